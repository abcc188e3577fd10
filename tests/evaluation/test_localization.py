import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from cmbflow.evaluation.detection import HitRule
from cmbflow.evaluation.localization import dice_per_class, filtering_table, localization_accuracy

TRUTH_AFFINE = np.diag([1.0, 1.0, 1.0, 1.0])
COARSE_AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])  # a model-ready grid twice as coarse, same world frame


def test_dice_per_class():
    truth = np.array([0, 1, 1, 2, 2, 3])
    predicted = np.array([0, 1, 2, 2, 2, 0])
    dice = dice_per_class(predicted, truth)
    assert dice["outside"] == pytest.approx(2 / 3)
    assert dice["lobar"] == pytest.approx(2 / 3)
    assert dice["deep"] == pytest.approx(4 / 5)
    assert dice["infratentorial"] == 0.0


def _save(path, data, affine):
    nib.save(nib.Nifti1Image(np.asarray(data, np.uint8), affine), str(path))
    return str(path)


def test_accuracy_at_true_centres_and_dice_compare_maps_on_the_true_grid(tmp_path):
    truth = np.zeros((20, 20, 20), np.uint8)
    truth[2:18, 2:18, 2:10] = 1  # lobar above ... below: infratentorial
    truth[2:18, 2:18, 10:18] = 3
    atlas = truth[::2, ::2, ::2]  # the same regions on the coarse grid
    network = np.where(atlas == 3, 1, atlas)  # calls infratentorial lobar
    markers = pd.DataFrame({"x": [5.0, 6.0, 7.0], "y": [6.0, 6.0, 6.0], "z": [4.0, 12.0, 14.0]})  # lobar, infra, infra
    markers.to_csv(tmp_path / "markers.tsv", sep="\t", index=False)
    files = {"truth_regions": _save(tmp_path / "truth.nii.gz", truth, TRUTH_AFFINE), "markers": str(tmp_path / "markers.tsv"),
             "atlas": _save(tmp_path / "atlas.nii.gz", atlas, COARSE_AFFINE),
             "network": _save(tmp_path / "network.nii.gz", network, COARSE_AFFINE)}
    table = localization_accuracy({"site": {"001": files}}).set_index("method")
    assert table.loc["atlas", "accuracy_at_cmbs"] == 1.0 and table.loc["network", "accuracy_at_cmbs"] == pytest.approx(1 / 3)
    assert table.loc["atlas", "cmbs"] == 3
    assert table.loc["atlas", "dice_lobar"] > 0.85 and table.loc["atlas", "dice_infratentorial"] > 0.85  # 2 mm edges
    assert table.loc["network", "dice_infratentorial"] == 0.0


def test_filtering_removes_a_false_positive_outside_the_brain_and_keeps_the_true_one(tmp_path):
    mask = np.zeros((10, 10, 10), np.uint8)
    mask[4, 4, 4] = 1
    masks = {"data": {"001": {"mask": _save(tmp_path / "mask.nii.gz", mask, TRUTH_AFFINE)}}}
    table = pd.DataFrame({"subject": "001", "candidate": ["a", "b", "c", "d"], "i": [4, 8, 1, 2], "j": [4, 8, 1, 2],
                          "k": [4, 8, 1, 2], "score": [0.9, 0.8, 0.7, 0.1],
                          "region_network": ["deep", "outside", "lobar", "outside"],
                          "region_atlas": ["deep", "outside", "outside", "outside"]})
    table.to_csv(tmp_path / "candidates.tsv", sep="\t", index=False)
    runs = [{"variant": "rpn", "dataset": "data", "table": str(tmp_path / "candidates.tsv"), "thresholds": [0.05, 0.5]}]
    table = filtering_table(runs, masks, HitRule.defaults())
    assert table.loc[(table["score_threshold"] == 0.05) & (table["filter"] == "before"), "fp"].item() == 3
    rows = table[table["score_threshold"] == 0.5].set_index("filter")
    assert rows.loc["before", ["tp", "fp"]].tolist() == [1, 2]  # d is below the operating threshold
    assert rows.loc["network", ["tp", "fp"]].tolist() == [1, 1]
    assert rows.loc["atlas", ["tp", "fp"]].tolist() == [1, 0]
    assert rows.loc["atlas", "sensitivity"] == 1.0 and rows.loc["before", "fp_per_subject"] == 2.0
