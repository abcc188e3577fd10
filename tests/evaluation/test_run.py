import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from cmbflow import paths
from cmbflow.evaluation.detection import HitRule
from cmbflow.evaluation.run import evaluate_detection


@pytest.fixture
def dataset(tmp_path):
    """Two subjects, 2 mm isotropic: CMB 1 in lobar (0), CMB 2 deep; region maps on the same grid:
    the atlas's, and a network's that misses the deep nuclei (so only ``either`` finds CMB 2 deep)."""
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    subjects = {}
    for key, centres in (("a", [(5, 5, 5), (15, 15, 5)]), ("b", [(10, 10, 5)])):
        labels = np.zeros((20, 20, 10), np.int16)
        regions = np.zeros((20, 20, 10), np.int16)
        regions[2:18, 2:18, 2:8] = 1
        regions[12:18, 12:18, 2:8] = 2  # deep
        for n, (i, j, k) in enumerate(centres, start=1):
            labels[i, j, k] = n
        network = np.where(regions == 2, 0, regions).astype(np.int16)
        for name, volume in (("mask", labels), ("atlas", regions), ("network", network)):
            nib.save(nib.Nifti1Image(volume, affine), tmp_path / f"{key}_{name}.nii.gz")
        subjects[key] = {"mask": str(tmp_path / f"{key}_mask.nii.gz"),
                         "regions": {name: str(tmp_path / f"{key}_{name}.nii.gz") for name in ("network", "atlas")}}
    voxels = np.array([[5, 5, 5], [5, 5, 5], [15, 15, 5], [1, 1, 1], [10, 10, 5], [8, 8, 5]], float)
    table = pd.DataFrame({"subject": ["a", "a", "a", "a", "b", "b"], "candidate": [f"c{n}" for n in range(6)],
                          "i": voxels[:, 0], "j": voxels[:, 1], "k": voxels[:, 2],
                          "score": [0.9, 0.8, 0.7, 0.95, 0.3, 0.6],
                          "region": ["lobar", "lobar", "deep", "outside", "lobar", "lobar"],
                          # the first hit of CMB a/1 is removed by filtering, a later one is kept
                          "kept": [False, True, True, False, True, True]})
    world = voxels * 2.0
    table[["x", "y", "z"]] = world
    table.to_csv(tmp_path / "candidates.tsv", sep="\t", index=False)
    return tmp_path, subjects


def test_before_and_after_filtering_with_regions(dataset):
    folder, subjects = dataset
    outputs = {name: str(folder / f"{name}.tsv") for name in paths.EVALUATION_TABLES}
    summary = evaluate_detection(str(folder / "candidates.tsv"), subjects, HitRule.defaults(), 0.5, outputs, n_boot=50).set_index("filter")
    # before: TPs a/1 (0.9), a/2 (0.7); FPs 0.95 (outside) and 0.6; b's CMB only at 0.3 (below the threshold)
    assert summary.loc["before", ["tp", "fp", "fn"]].tolist() == [2, 2, 1]
    # after: the outside FP is gone and a/1 is found by its kept, second candidate
    assert summary.loc["after", ["tp", "fp", "fn"]].tolist() == [2, 1, 1]
    assert summary.loc["after", "fp_per_subject"] == 0.5 and summary.loc["after", "precision"] == pytest.approx(2 / 3)
    assert summary.loc["before", "cpm"] <= summary.loc["after", "cpm"]
    regions = pd.read_csv(outputs["regions"], sep="\t").set_index(["filter", "region"])
    assert regions.loc[("after", "deep"), ["cmbs", "tp", "fp"]].tolist() == [1, 1, 0]
    assert regions.loc[("after", "lobar"), ["cmbs", "tp", "fp"]].tolist() == [2, 1, 1]
    # the CMBs' regions follow the localization: by the network alone, the deep CMB lies outside
    network_only = {name: str(folder / f"network_{name}.tsv") for name in paths.EVALUATION_TABLES}
    evaluate_detection(str(folder / "candidates.tsv"), subjects, HitRule.defaults(), 0.5, network_only, n_boot=10, choice="network")
    assert pd.read_csv(network_only["regions"], sep="\t").set_index(["filter", "region"]).loc[("after", "deep"), "cmbs"] == 0
    lesions = pd.read_csv(outputs["lesions"], sep="\t", dtype={"subject": str})
    assert lesions.sort_values(["subject", "lesion"])["best_score"].tolist() == [0.9, 0.7, 0.3]
    matched = pd.read_csv(outputs["matched"], sep="\t")
    assert sorted(set(matched["filter"])) == ["after", "before"] and len(matched) == 6 + 4


def test_subject_agreement_and_centre_distance_f1_join_the_summary(dataset):
    """After filtering at 0.5: a keeps 0.8 and 0.7 (its 2 CMBs), b keeps 0.6, a false positive 2 voxels
    (5.7 mm) off its CMB: counts agree (2 and 1), the mm rule misses b's CMB, the 5-voxel rule finds it."""
    folder, subjects = dataset
    outputs = {name: str(folder / f"{name}.tsv") for name in paths.EVALUATION_TABLES}
    summary = evaluate_detection(str(folder / "candidates.tsv"), subjects, HitRule.defaults(), 0.5, outputs, n_boot=20).set_index("filter")
    per_subject = pd.read_csv(outputs["subjects"], sep="\t", dtype={"subject": str}).set_index("subject")
    assert per_subject.loc[["a", "b"], "cmbs"].tolist() == [2, 1] and per_subject.loc[["a", "b"], "detected"].tolist() == [2, 1]
    after = summary.loc["after"]
    assert after["count_mae"] == 0 and after["subject_sensitivity"] == 1 and np.isnan(after["subject_auc"])  # no CMB-free subject
    assert after["f1_centre_mm"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1)) and after["valdo_f1"] == 1.0
    # before filtering, a's outside candidate (0.95) and the second one on its CMB 1 count too: 4 for 2
    assert summary.loc["before", "count_mae"] == 1.0


def test_a_cmb_rated_possible_is_neither_missed_nor_found(dataset):
    """Markers rate b's CMB possible: it leaves the CMB count, the FN and the census; its candidate
    (0.3) is neither a true nor a false positive; cpm_all_cmbs still scores it as definite."""
    folder, subjects = dataset
    markers = folder / "b_markers.tsv"  # at b's CMB, voxel (10, 10, 5) of 2 mm
    pd.DataFrame({"x": [20.0], "y": [20.0], "z": [10.0], "rating": ["Possible"]}).to_csv(markers, sep="\t", index=False)
    subjects["b"]["markers"] = str(markers)
    outputs = {name: str(folder / f"{name}.tsv") for name in paths.EVALUATION_TABLES}
    summary = evaluate_detection(str(folder / "candidates.tsv"), subjects, HitRule.defaults(), 0.5, outputs, n_boot=20).set_index("filter")
    before = summary.loc["before"]
    assert before[["cmbs", "cmbs_possible", "tp", "fp", "fn"]].tolist() == [2, 1, 2, 2, 0]
    assert before["cpm"] > before["cpm_all_cmbs"]  # two of two definite CMBs found above 2 FPs; b's only at 0.3
    matched = pd.read_csv(outputs["matched"], sep="\t", dtype={"subject": str})
    assert matched.loc[(matched["filter"] == "before") & (matched["subject"] == "b"), "outcome"].tolist() == ["fp", "possible"]
    lesions = pd.read_csv(outputs["lesions"], sep="\t", dtype={"subject": str}).sort_values(["subject", "lesion"])
    assert lesions["rating"].tolist() == ["definite", "definite", "possible"]
    per_subject = pd.read_csv(outputs["subjects"], sep="\t", dtype={"subject": str}).set_index("subject")
    assert per_subject.loc["b", "cmbs"] == 0
