"""The Snakemake DAG end to end on a tiny config: synthetic site + a user BIDS dataset."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from cmbflow import paths
from cmbflow.io.coords import lps_to_ras, voxel_to_world
from tests.workflow.new_data import SHARED_DICOM, sha256
from tests.workflow.tiny import snakemake

# one worker runs them all: they share the tiny run (pyproject.toml)
pytestmark = [pytest.mark.workflow, pytest.mark.xdist_group("workflow")]


def test_dag_writes_manifests_split_template_and_qc(tiny_run):
    workdir, _, _, _ = tiny_run
    results = workdir / "results"
    internal = pd.read_csv(results / "inputs/tiny_internal/manifest.tsv", sep="\t", dtype={"key": str})
    participants = pd.read_csv(results / "synth/site-tiny/participants.tsv", sep="\t")
    assert list(internal["key"]) == ["001", "002"]
    assert list(internal["n_cmb"]) == list(participants["n_cmb"])  # mask instances == markers written
    assert internal["n_cmb"].sum() >= 1
    split = pd.read_csv(results / "inputs/tiny_internal/split.tsv", sep="\t", dtype={"key": str})
    assert sorted(split["split"]) == ["test", "train"]
    train_only = pd.read_csv(results / "inputs/tiny_train/split.tsv", sep="\t", dtype={"key": str})
    assert train_only.to_dict("list") == {"key": ["001"], "split": ["train"]}  # role train: every subject trains
    assert_figure(results / "qc/synth_tiny/overview.png")
    for name in ("part-mag_swi", "part-phase_swi", "desc-brain_mask", "desc-mars_dseg"):
        assert (results / f"synth/template/tpl-synth_{name}.nii.gz").exists()
    assert not (results / "synth/site-internal").exists()  # the user's datasets replaced the default cohort


def test_user_dataset_validated_in_place_and_untouched(tiny_run):
    workdir, user_bids, before, _ = tiny_run
    manifest = pd.read_csv(workdir / "results/inputs/user_scans/manifest.tsv", sep="\t", dtype={"key": str})
    assert list(manifest["key"]) == ["001", "002"]
    assert manifest["phase_units"].str.contains("scanner units -4096..4095").all()
    assert set(manifest["orientation"]) == {"LAS"}
    assert sorted(p.relative_to(user_bids) for p in user_bids.rglob("*")) == before


def test_preprocessing_writes_every_output_in_the_model_ready_frame(tiny_run):
    workdir, _, _, _ = tiny_run
    for dataset, keys in (("tiny_internal", ["001", "002"]), ("tiny_train", ["001"]), ("user_scans", ["001", "002"])):
        quality = pd.read_csv(workdir / paths.registration_quality(dataset),
                              sep="\t", dtype={"subject": str})
        assert list(quality["subject"]) == keys
        for key in keys:
            files = {k: workdir / v for k, v in paths.preproc_subject_files(dataset, key).items()}
            assert all(path.exists() for path in files.values())
            assert_figure(files["qc"])
            sidecar = json.loads(files["sidecar"].read_text())
            assert sidecar["Grid"]["SpacingMm"] == pytest.approx([2.0, 2.0, 3.0])  # the internal site's spacing
            swi = nib.load(files["swi"])
            np.testing.assert_allclose(swi.affine[:3, :3], np.diag([2.0, 2.0, 3.0]))  # RAS+-aligned, even for oblique LAS input
            brain = np.asarray(nib.load(files["brainmask"]).dataobj) > 0
            data = swi.get_fdata()
            assert 0.3 < np.median(data[brain]) < 0.9 and data.min() >= -1 and data.max() <= 2
            phase = nib.load(files["phase"]).get_fdata()
            assert phase.min() >= -1 and phase.max() <= 1


def test_warped_atlas_matches_the_true_regions_of_every_subject(tiny_run):
    workdir, _, _, _ = tiny_run
    quality = pd.read_csv(workdir / "results/preproc/tiny_internal/desc-registration_quality.tsv", sep="\t")
    # Deep 0.79-0.84 since the head got a dark skull band and air cavities (+9 ppm, with their field
    # artefacts) in subject and template alike; 0.85-0.9 before on these 2 x 2 x 3 mm subjects.
    assert (quality["dice_lobar"] >= 0.85).all() and (quality["dice_deep"] >= 0.75).all(), quality
    assert (quality["dice_infratentorial"] >= 0.80).all(), quality
    markers = pd.concat([pd.read_csv(workdir / paths.preproc_subject_files("tiny_internal", key)["markers"], sep="\t")
                         for key in ("001", "002")])
    assert len(markers) >= 2
    assert (markers["region"] == markers["atlas_region"]).mean() >= 0.9  # 0.95 before the skull band and air cavities


def test_annotations_land_on_their_lesions_and_keep_world_coordinates(tiny_run):
    workdir, user_bids, _, _ = tiny_run
    for key in ("001", "002"):
        files = paths.preproc_subject_files("user_scans", key)
        table = pd.read_csv(workdir / files["markers"], sep="\t")
        original = pd.read_csv(user_bids / f"derivatives/cmb_labels/sub-{key}/anat/sub-{key}_desc-cmb_markers.tsv", sep="\t")
        np.testing.assert_allclose(table[["x", "y", "z"]], original[["x", "y", "z"]], atol=1e-3)  # world mm of the user's scan
        labels = np.asarray(nib.load(workdir / files["cmb_mask"]).dataobj)
        ijk = np.rint(table[["i", "j", "k"]].to_numpy()).astype(int)
        assert list(table["label"]) == list(table["id"])  # the generator numbers mask instances like its markers
        assert [labels[tuple(v)] for v in ijk] == list(table["label"])


def test_phase_sign_gives_cmbs_one_sign_at_every_site(tiny_run):
    """The user's scans store phase with the opposite handedness (phase_sign -1): after
    normalization, the B0 lobes of paramagnetic CMBs are negative at both sites."""
    workdir, _, _, _ = tiny_run
    lobes = {dataset: pd.read_csv(workdir / f"results/preproc/{dataset}/desc-registration_quality.tsv", sep="\t")["cmb_phase_lobe"]
             for dataset in ("tiny_internal", "user_scans")}
    for dataset, values in lobes.items():
        assert (values.dropna() < 0).all(), (dataset, values)


def test_each_variant_is_a_model_folder_with_weights_card_and_curves(tiny_run):
    workdir, _, _, _ = tiny_run
    for variant in ("rpn", "rpn_ffm_hspl"):
        files = {k: workdir / v for k, v in paths.model_files(variant).items()}
        state = torch.load(files["weights"], weights_only=True)
        assert set(state) == ({"detector", "prototypes"} if variant == "rpn_ffm_hspl" else {"detector"})
        card = json.loads(files["card"].read_text())
        assert card["variant"] == variant and card["spacing_mm"] == pytest.approx([2.0, 2.0, 3.0])
        trained = card["data_split"]["train"]  # the internal site's training subject and the training-only site's
        assert sorted(trained) == sorted(["tiny_train/001", *(f"tiny_internal/{k}" for k in ("001", "002") if f"tiny_internal/{k}" not in card["data_split"]["test"])])
        assert len(card["data_split"]["test"]) == 1 and card["data_split"]["test"][0] not in card["data_split"]["train"]
        assert "inference" not in card["resolved_config"]["detector"]  # changing inference options must not retrain
        assert list(pd.read_csv(files["curves"], sep="\t")["iteration"]) == [2, 4]
        assert_figure(files["curves_png"])


def test_candidates_are_in_world_mm_and_voxels_of_the_users_original_scan(tiny_run):
    workdir, user_bids, _, _ = tiny_run
    for variant in ("rpn", "rpn_ffm_hspl"):
        files = {k: workdir / v for k, v in paths.candidate_files(variant, "user_scans").items()}
        table = pd.read_csv(files["table"], sep="\t", dtype={"subject": str})
        assert sorted(set(table["subject"])) == ["001", "002"] and len(table) == 40
        for key, rows in table.groupby("subject"):
            original = nib.load(user_bids / f"sub-{key}/anat/sub-{key}_part-mag_swi.nii.gz")  # oblique LAS
            np.testing.assert_allclose(voxel_to_world(original.affine, rows[["i", "j", "k"]].to_numpy()),
                                       rows[["x", "y", "z"]].to_numpy(), atol=2e-3)
            probability = nib.load(workdir / paths.subject_detections(variant, "user_scans", key, "probability"))
            assert probability.shape == original.shape and np.allclose(probability.affine, original.affine, atol=1e-4)
    internal = pd.read_csv(workdir / paths.candidate_files("rpn", "tiny_internal")["table"], sep="\t", dtype={"subject": str})
    split = pd.read_csv(workdir / "results/inputs/tiny_internal/split.tsv", sep="\t", dtype={"key": str})
    assert set(internal["subject"]) == set(split.loc[split["split"] == "test", "key"])  # held-out subjects only
    assert not (workdir / paths.candidate_files("rpn", "tiny_train")["table"]).exists()  # a training-only site is never scored


def test_every_variant_and_annotated_dataset_is_evaluated_with_figures_and_tables(tiny_run):
    workdir, _, _, _ = tiny_run
    models = pd.read_csv(workdir / paths.evaluation_table("models_by_site", ".tsv"), sep="\t")
    assert sorted(set(zip(models["variant"], models["dataset"], models["filter"]))) == [
        (v, d, f) for v in ("rpn", "rpn_ffm_hspl") for d in ("tiny_internal", "user_scans") for f in ("after", "before")]
    assert models[["sensitivity", "cpm", "ap"]].stack().between(0, 1).all()
    assert (models["cpm_lower"] <= models["cpm"] + 1e-9).all() and (models["cpm"] <= models["cpm_upper"] + 1e-9).all()
    assert (models["threshold"] == 0.0).all()  # census.score_threshold overrides the cards' operating points
    assert "| rpn |" in (workdir / paths.evaluation_table("models_by_site", ".md")).read_text()
    assert "Other data" in (workdir / paths.evaluation_table("literature", ".md")).read_text()
    paired = pd.read_csv(workdir / paths.evaluation_table("paired_differences", ".tsv"), sep="\t")
    assert sorted(zip(paired["dataset"], paired["filter"])) == [(d, f) for d in ("tiny_internal", "user_scans")
                                                                 for f in ("after", "before")]
    assert (paired[["variant_a", "variant_b"]].to_numpy() == ["rpn", "rpn_ffm_hspl"]).all()
    assert (paired["delta_cpm_lower"] <= paired["delta_cpm_upper"]).all()
    for variant in ("rpn", "rpn_ffm_hspl"):
        point = json.loads((workdir / paths.model_files(variant)["operating_point"]).read_text())
        # two training subjects leave none for validation: the point keeps every candidate, and says so
        assert point["subjects"] == [] and point["threshold"] == 0.0
        assert point["source"].startswith("validation subjects") and point["inference"]["nms_iou"] == 0.1
        assert "operating_point" not in json.loads((workdir / paths.model_files(variant)["card"]).read_text())
        # the external dataset gets a point adapted to its candidates; with no validation subjects there is no
        # home level to compare with, and it says so (tests/evaluation/test_operating_point.py adapts); home keeps the model's
        adapted = json.loads((workdir / paths.adapted_operating_point(variant, "user_scans")).read_text())
        assert adapted["threshold"] == point["threshold"] and "not adapted to user_scans" in adapted["source"]
        assert not (workdir / paths.adapted_operating_point(variant, "tiny_internal")).exists()
        for dataset in ("tiny_internal", "user_scans"):
            files = {k: workdir / v for k, v in paths.evaluation_files(variant, dataset).items()}
            summary = pd.read_csv(files["summary"], sep="\t").set_index("filter")
            every = pd.read_csv(files["lesions"], sep="\t", dtype={"subject": str})
            lesions = every[every["rating"] == "definite"]  # possible CMBs (the generator's rating) are not scored
            assert summary.loc["before", "cmbs"] == len(lesions) > 0
            assert summary.loc["before", "cmbs_possible"] == (every["rating"] == "possible").sum()
            assert summary.loc["after", "tp"] <= summary.loc["before", "tp"]
            # the subject-level table counts what the census counts
            per_subject = pd.read_csv(files["subjects"], sep="\t", dtype={"subject": str}).set_index("subject")
            counts = pd.read_csv(workdir / paths.census_files(variant, dataset)["counts"], sep="\t", dtype={"subject": str})
            assert per_subject["detected"].to_dict() == counts.set_index("subject").loc[per_subject.index, "total"].to_dict()
            assert per_subject["cmbs"].sum() == len(lesions) and summary.loc["after", "count_mae"] >= 0
            tsne = pd.read_csv(workdir / paths.figure(f"{variant}/{dataset}", "tsne")["png"].replace(".png", ".tsv"), sep="\t")
            assert "TN" in set(tsne["kind"]) and tsne[["tsne_1", "tsne_2"]].notna().all().all()
            assert tsne["kind"].isin(["TP", "FN"]).sum() == len(lesions)  # every CMB found or missed, once
    figures = [paths.figure(d, f) for d in ("tiny_internal", "user_scans")
               for f in ("froc", "precision_recall", "fp_per_subject", "count_agreement", "candidate_panels", "anatomical_filtering")]
    figures += [paths.figure("models", "feature_levels")]
    for figure in figures:
        assert_figure(workdir / figure["png"])
        assert (workdir / figure["pdf"]).read_bytes()[:5] == b"%PDF-"


def test_candidates_get_a_region_and_kept_and_the_census_counts_them(tiny_run):
    workdir, _, _, _ = tiny_run
    detections = pd.read_csv(workdir / paths.detection_files("rpn", "user_scans")["table"], sep="\t", dtype={"subject": str})
    table = pd.read_csv(workdir / paths.candidate_files("rpn", "user_scans")["table"], sep="\t", dtype={"subject": str})
    assert table["candidate"].tolist() == detections["candidate"].tolist()  # the detections' rows, in their order
    regions = {"outside", "lobar", "deep", "infratentorial"}
    assert set(table["region_network"]) <= regions and set(table["region_atlas"]) <= regions
    # config localization: either (default): the network's region, the atlas's where the network says outside
    inside = table["region_network"] != "outside"
    assert (table.loc[inside, "region"] == table.loc[inside, "region_network"]).all()
    assert (table.loc[~inside, "region"] == table.loc[~inside, "region_atlas"]).all()
    assert (table["kept"] == (table["region"] != "outside")).all()
    per_subject = pd.read_csv(workdir / paths.subject_candidates("rpn", "user_scans", "001"), sep="\t", dtype={"subject": str})
    assert per_subject.equals(table[table["subject"] == "001"].reset_index(drop=True))
    census = {k: pd.read_csv(workdir / v, sep="\t", dtype={"subject": str}) for k, v in paths.census_files("rpn", "user_scans").items()}
    assert census["counts"]["subject"].tolist() == ["001", "002"]
    assert census["counts"]["total"].sum() == len(census["cmbs"]) == int(table["kept"].sum())  # threshold 0 in the tiny config
    assert (census["counts"][["lobar", "deep", "infratentorial"]].sum(axis=1) == census["counts"]["total"]).all()
    segmentation = nib.load(workdir / paths.region_segmentation("user_scans", "001"))
    atlas = nib.load(workdir / paths.preproc_subject_files("user_scans", "001")["regions"])
    assert segmentation.shape == atlas.shape and np.allclose(segmentation.affine, atlas.affine)


def test_the_census_of_every_subject_is_exported_for_slicer_and_itk_snap_on_its_original_grid(tiny_run):
    workdir, user_bids, _, _ = tiny_run
    for variant in ("rpn", "rpn_ffm_hspl"):
        cmbs = pd.read_csv(workdir / paths.census_files(variant, "user_scans")["cmbs"], sep="\t", dtype={"subject": str})
        for key in ("001", "002"):
            mine = cmbs[cmbs["subject"] == key]
            markups = json.loads((workdir / paths.subject_export(variant, "user_scans", key, "markups")).read_text())
            points = markups["markups"][0]["controlPoints"]
            assert markups["markups"][0]["coordinateSystem"] == "LPS" and len(points) == len(mine) > 0
            np.testing.assert_allclose(lps_to_ras(np.array([p["position"] for p in points])), mine[["x", "y", "z"]].to_numpy(),
                                       atol=0.01)  # mm, to the census table
            labels = nib.load(workdir / paths.subject_export(variant, "user_scans", key, "labels"))
            original = nib.load(user_bids / f"sub-{key}/anat/sub-{key}_part-mag_swi.nii.gz")  # oblique LAS
            assert labels.shape == original.shape and np.allclose(labels.affine, original.affine, atol=1e-4)
            values = np.unique(np.asarray(labels.dataobj))
            assert 1 in values and set(values) <= set(range(len(mine) + 1))  # CMB 1, the best, is never overdrawn


def test_every_scored_subject_gets_a_report_holding_its_census(tiny_run):
    """The report variant (census.report_variant null: the last variant) on every scored dataset."""
    from pypdf import PdfReader

    workdir, _, _, _ = tiny_run
    for dataset in ("tiny_internal", "user_scans"):
        counts = pd.read_csv(workdir / paths.census_files("rpn_ffm_hspl", dataset)["counts"], sep="\t", dtype={"subject": str})
        assert len(counts)
        for row in counts.itertuples():
            pdf = workdir / paths.subject_report(dataset, row.subject, "pdf")
            first = " ".join(PdfReader(pdf).pages[0].extract_text().split())
            assert f"lobar deep infratentorial total {row.lobar} {row.deep} {row.infratentorial} {row.total}" in first, pdf
            assert "rpn_ffm_hspl" in first and (workdir / paths.subject_report(dataset, row.subject, "html")).is_file()


def test_the_localizer_is_one_model_folder_and_both_localizations_are_evaluated(tiny_run):
    workdir, _, _, _ = tiny_run
    files = {k: workdir / v for k, v in paths.localizer_files().items()}
    assert set(torch.load(files["weights"], weights_only=True)) == {"localizer"}
    card = json.loads(files["card"].read_text())
    assert card["network"]["in_channels"] == 4 and len(card["input_channels"]) == 4  # SWI + template x, y, z
    assert "detector" not in card["resolved_config"]  # retraining a detector does not retrain the localizer
    accuracy = pd.read_csv(workdir / paths.localization_accuracy(), sep="\t")
    assert sorted(zip(accuracy["dataset"], accuracy["method"])) == [("tiny_internal", "atlas"), ("tiny_internal", "network")]
    assert accuracy["accuracy_at_cmbs"].between(0, 1).all() and (accuracy["cmbs"] > 0).all()
    assert accuracy.loc[accuracy["method"] == "atlas", "dice_lobar"].item() > 0.7  # registration of the tiny subject
    filtering = pd.read_csv(workdir / paths.anatomical_filtering(), sep="\t")
    assert len(filtering) == 2 * 2 * 4  # variants x datasets x (before, network, atlas, either)
    for _, run in filtering.groupby(["variant", "dataset"]):
        stage = run.set_index("filter")
        after = stage.loc[["network", "atlas", "either"]]
        assert (after["fp"] <= stage.loc["before", "fp"]).all() and (after["tp"] <= stage.loc["before", "tp"]).all()
        for column in ("tp", "fp"):  # either removes only what both remove: it keeps at least what each keeps
            assert stage.loc["either", column] >= max(stage.loc["network", column], stage.loc["atlas", column])


def test_changing_an_inference_option_reruns_inference_but_not_training(tiny_run):
    """... also from a second configfile, which merges into `detector` and reorders the config."""
    workdir, _, _, config = tiny_run
    result = snakemake(workdir, config, "-n", override={"detector": {"inference": {"nms_iou": 0.2}}})
    assert result.returncode == 0, result.stdout
    assert "detect_cmbs" in result.stdout and "train_detector" not in result.stdout and "train_localizer" not in result.stdout
    assert "choose_operating_point" in result.stdout  # the operating point is chosen with the inference settings in use


def test_the_operating_point_subjects_option_reaches_its_rule(tiny_run):
    """detector.operating_point.subjects (every validation subject, or the home site's alone) is a
    parameter of choose_operating_point: changing it remakes the point, never the training."""
    workdir, _, _, config = tiny_run
    result = snakemake(workdir, config, "-n", override={"detector": {"operating_point": {"subjects": "home"}}})
    assert result.returncode == 0, result.stdout
    assert "choose_operating_point" in result.stdout and "train_detector" not in result.stdout



def test_use_gpu_asks_for_a_gpu_for_every_job_that_runs_a_network_and_for_no_other(tiny_run):
    """config use_gpu: training, the operating point, inference and region segmentation ask the
    scheduler for a GPU (SLURM: --gpus=1) and for less time; preprocessing and the rest do not."""
    workdir, _, _, config = tiny_run
    result = snakemake(workdir, config, "-n", "--forceall", override={"use_gpu": True})
    assert result.returncode == 0, result.stdout[-3000:]
    jobs = re.findall(r"^(?:local)?rule (\w+):\n(?:    .*\n)*?    resources: (.*)$", result.stdout, re.M)
    asked = {rule: dict(item.split("=", 1) for item in resources.split(", ")) for rule, resources in jobs}
    networks = {"train_detector", "train_localizer", "choose_operating_point", "detect_cmbs", "segment_regions"}
    assert networks <= set(asked) and all(asked[rule].get("gpu") == "1" for rule in networks), asked
    assert asked["train_detector"]["runtime"] == "30"  # 120 min on CPU cores, a quarter on a GPU
    assert all(asked[rule].get("gpu", "0") == "0" for rule in set(asked) - networks), asked

def test_changing_localization_census_or_evaluation_options_reruns_neither_training_nor_inference(tiny_run):
    workdir, _, _, config = tiny_run
    changed = {**config, "localization": "atlas", "region_margin_mm": 2.0, "census": {"score_threshold": 0.3},
               "evaluation": {"bootstrap": 50}}
    result = snakemake(workdir, changed, "-n")
    assert result.returncode == 0, result.stdout
    for rule in ("localize_candidates", "anatomical_filtering", "evaluate_detection", "site_figures"):
        assert rule in result.stdout, rule
    for rule in ("train_detector", "detect_cmbs", "train_localizer", "segment_regions"):
        assert rule not in result.stdout, rule


def assert_figure(path: Path) -> None:
    """A PNG that decodes to a picture with something drawn on it (not one flat colour)."""
    import matplotlib.image

    pixels = matplotlib.image.imread(path)
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100, (path, pixels.shape)
    assert pixels[..., :3].std() > 0.02, f"{path}: a blank figure"


def test_a_dataset_without_phase_runs_with_a_one_channel_detector_and_refuses_two_channel_ones(new_data_run, tmp_path):
    """SWI-only scans (phase: false): a detector that reads phase is refused before any job,
    naming the dataset and the model; a one-channel variant (inputs [swi]) is trained and runs
    on them, and on the sites with phase, with no phase preprocessed for the SWI-only one."""
    refused = snakemake(tmp_path / "refused", new_data_run.config, "-n")  # the tiny run's variants read phase
    assert refused.returncode != 0
    assert "datasets.swi_scans has no phase (phase: false), but detector 'rpn' reads swi and phase" in refused.stdout
    result = new_data_run.run.wait()  # a copy of the tiny run with a one-channel variant on those scans
    copy = new_data_run.run.workdir
    assert result.returncode == 0, result.stdout[-3000:]
    # another scored site retrains nothing, and the sites already preprocessed are not again
    assert "train_localizer" not in result.stdout and "preprocess_subject " not in result.stdout
    card = json.loads((copy / paths.model_files("swi")["card"]).read_text())
    assert card["inputs"] == ["swi"] and card["network"]["in_channels"] == 1 and len(card["input_channels"]) == 1
    manifest = pd.read_csv(copy / "results/inputs/swi_scans/manifest.tsv", sep="\t", dtype=str, keep_default_na=False)
    assert manifest["key"].tolist() == ["001"] and manifest["phase"].tolist() == [""]
    files = paths.preproc_subject_files("swi_scans", "001")
    assert (copy / files["swi"]).is_file() and not (copy / files["phase"]).exists()
    assert json.loads((copy / files["sidecar"]).read_text())["Phase"].startswith("none")
    for dataset in ("tiny_internal", "swi_scans"):
        summary = pd.read_csv(copy / paths.evaluation_files("swi", dataset)["summary"], sep="\t")
        assert len(summary) and summary["cpm"].between(0, 1).all()


def test_fine_tuning_and_calibration_use_only_calibration_subjects_that_are_never_scored(new_data_run):
    """One user subject set aside: a detector fine-tuned on it names its parent, and every
    variant's operating point on that dataset is calibrated on it; neither is scored there."""
    result = new_data_run.run.wait()  # a copy of the tiny run with that subject set aside
    copy = new_data_run.run.workdir
    assert result.returncode == 0, result.stdout[-3000:]
    assert "train_detector" not in result.stdout  # the trained variants are reused, not retrained
    split = pd.read_csv(copy / "results/inputs/user_scans/split.tsv", sep="\t", dtype={"key": str})
    calibration = split.loc[split["split"] == "calibration", "key"].tolist()
    scored = split.loc[split["split"] == "test", "key"].tolist()
    assert len(calibration) == 1 and len(scored) == 1
    card = json.loads((copy / paths.model_files("rpn_tuned")["card"]).read_text())
    parent = copy / paths.model_files("rpn")["weights"]
    assert card["parent"]["folder"].endswith("results/models/rpn") and card["parent"]["model_sha256"] == sha256(parent)
    assert card["fine_tune"]["subjects"] == [f"user_scans/{calibration[0]}"] and card["fine_tune"]["dataset"] == "user_scans"
    assert card["data_split"]["test"] == [f"user_scans/{scored[0]}"]
    for variant in ("rpn", "rpn_ffm_hspl", "rpn_tuned"):
        point = json.loads((copy / paths.calibrated_operating_point(variant, "user_scans")).read_text())
        assert point["subjects"] == [f"user_scans/{calibration[0]}"] and "calibration" in point["source"]
        files = paths.evaluation_files(variant, "user_scans")
        summary = pd.read_csv(copy / files["summary"], sep="\t")
        assert np.allclose(summary["threshold"], point["threshold"], atol=1e-4)  # tables keep 4 decimals
        assert summary["threshold_source"].str.contains("calibration").all()
        assert set(pd.read_csv(copy / files["matched"], sep="\t", dtype={"subject": str})["subject"]) <= set(scored)
        counts = pd.read_csv(copy / paths.census_files(variant, "user_scans")["counts"], sep="\t", dtype={"subject": str})
        assert counts["subject"].tolist() == scored
    tuned_point = json.loads((copy / paths.model_files("rpn_tuned")["operating_point"]).read_text())
    assert tuned_point["subjects"] == [f"user_scans/{calibration[0]}"]  # its own threshold: the subjects it was tuned on
    internal = pd.read_csv(copy / paths.evaluation_files("rpn", "tiny_internal")["summary"], sep="\t")
    assert internal["threshold_source"].str.startswith("validation subjects").all()  # other datasets keep the model's


CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync")


def _chromium_dom(chromium: str, page: Path, profile: Path) -> str:
    """The DOM of ``page`` after its scripts ran, from headless Chromium."""
    result = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=15000",
                             "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_report_is_self_contained_and_its_figures_render_in_headless_chromium(tiny_run, tmp_path):
    workdir, _, _, config = tiny_run
    result = snakemake(workdir, config, "--report", "results/report.html")
    assert result.returncode == 0, result.stdout[-3000:]
    html = (workdir / "results/report.html").read_text()
    embedded = dict(re.findall(r'"data_uri": "data:([a-z/+-]+);[^"]*?base64,([A-Za-z0-9+/=]+)"', html))
    images = re.findall(r'"data_uri": "(data:image/png;[^"]*?base64,[A-Za-z0-9+/=]+)"', html)
    names = set(re.findall(r'"name": "([^"]+\.png)"', html))
    for expected in ("froc.png", "precision_recall.png", "fp_per_subject.png", "tsne.png", "candidate_panels.png",
                     "anatomical_filtering.png", "feature_levels.png", "curves.png"):
        assert expected in names, expected
    assert embedded and len(images) >= 20
    for uri in images:
        assert base64.b64decode(uri.split("base64,", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert not re.search(r'(src|href)="(?!data:|#|javascript:|https?://)[^"]+\.(png|pdf|tsv|md)"', html)  # nothing points to files
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian chromium is not installed (tools/install.sh --test installs it)")
    dom = _chromium_dom(chromium, workdir / "results/report.html", tmp_path / "profile")
    for category in ("Evaluation", "Detector", "Localization"):
        assert category in dom, category  # the report's app ran and lists its categories
    # every embedded figure decodes to a non-empty picture in the browser
    page = tmp_path / "figures.html"
    tags = "".join(f'<img id="f{n}" src="{uri}">' for n, uri in enumerate(images))
    page.write_text("<html><body>" + tags + "<pre id='sizes'></pre><script>window.onload = () => { document.getElementById('sizes')"
                    ".textContent = [...document.images].map(i => i.naturalWidth + 'x' + i.naturalHeight).join(' '); };"
                    "</script></body></html>")
    sizes = re.search(r'<pre id="sizes">([^<]*)</pre>', _chromium_dom(chromium, page, tmp_path / "profile2")).group(1).split()
    assert len(sizes) == len(images)
    assert all(int(w) > 100 and int(h) > 100 for w, h in (size.split("x") for size in sizes)), sizes


def test_rerun_has_nothing_to_do(tiny_run):
    workdir, _, _, config = tiny_run
    result = snakemake(workdir, config, "-n")
    assert result.returncode == 0 and "Nothing to be done" in result.stdout


def test_the_split_is_decided_once_and_deleting_it_changes_nothing_else(tiny_run):
    """Every rule reads the split from split.tsv (the checkpoint split_dataset): deleting the
    table makes the same one again; no model is retrained, the internal dataset's inference is
    kept, and every table comes out as it was. (Snakemake marks the jobs below a model as
    needing a run while the checkpoint is missing and does not take that back for jobs that do
    not read the split themselves: the external dataset's inference reruns, to the same tables.)"""
    workdir, _, _, config = tiny_run
    table = workdir / "results/inputs/tiny_internal/split.tsv"
    before = table.read_text()
    kept = [workdir / "results/models/rpn/model.pt", workdir / "results/models/localizer/model.pt",
            workdir / "results/models/rpn/operating_point.json", *sorted((workdir / "results/detections").rglob("tiny_internal/*.tsv"))]
    stamps = {path: path.stat().st_mtime_ns for path in kept}
    tables = {path: path.read_text() for pattern in ("candidates/*/*/*.tsv", "census/*/*/*.tsv", "evaluation/**/*.tsv")
              for path in sorted((workdir / "results").glob(pattern))}
    assert len(stamps) > 4 and len(tables) > 15
    table.unlink()
    result = snakemake(workdir, config, targets=[str(path.relative_to(workdir)) for path in [table, *tables]])  # not the figures
    assert result.returncode == 0, result.stdout[-3000:]
    assert table.read_text() == before
    ran = set(re.findall(r"^(?:local)?(?:rule|checkpoint) (\w+):", result.stdout, re.M))
    assert "split_dataset" in ran and not ran & {"train_detector", "train_localizer", "choose_operating_point",
                                                 "preprocess_subject", "validate_dataset"}, sorted(ran)
    assert {path: path.stat().st_mtime_ns for path in kept} == stamps
    assert {path: path.read_text() for path in tables} == tables


def test_bad_input_fails_before_heavy_work_naming_the_file(tmp_path, user_bids):
    broken = tmp_path / "broken"
    shutil.copytree(user_bids, broken)
    phase = next(broken.rglob("sub-002_part-phase_swi.nii.gz"))
    phase.unlink()
    config = {"datasets": {"broken": {"bids_dir": str(broken), "role": "external"}}}
    result = snakemake(tmp_path / "work", config)
    assert result.returncode != 0
    assert "no phase image" in result.stdout and str(phase) in result.stdout
    assert not (tmp_path / "work/results/inputs/broken/manifest.tsv").exists()


def test_missing_bids_dir_is_a_clear_error_at_dag_build(tmp_path):
    result = snakemake(tmp_path / "work", {"datasets": {"gone": {"bids_dir": str(tmp_path / "nope"), "role": "external"}}}, "-n")
    assert result.returncode != 0 and "bids_dir" in result.stdout and "does not exist" in result.stdout


def test_schema_rejects_bad_config(tmp_path):
    result = snakemake(tmp_path / "work", {"datasets": {"d": {"bids_dir": "x", "role": "training"}}}, "-n")
    assert result.returncode != 0 and "training" in result.stdout


def test_lint_is_clean(tiny_run):
    workdir, _, _, config = tiny_run
    result = snakemake(workdir, config, "--lint")
    assert result.returncode == 0, result.stdout
    assert "Congratulations" in result.stdout


# The new-data runs started in the background when the tiny run was done (conftest tiny_run): their
# tests come last, so that the tests above run while they do.

def test_trained_models_run_new_data_from_a_results_folder_holding_only_them(new_data_run):
    """config `models:` with new datasets: inference, evaluation where annotated, census and
    example figures everywhere; no training rule in the DAG; the model folders untouched."""
    result = new_data_run.run.wait()
    fresh, new = new_data_run.run.workdir, new_data_run.config
    assert result.returncode == 0, result.stdout[-3000:]
    assert "train_detector" not in result.stdout and "train_localizer" not in result.stdout
    assert {p: sha256(p) for p in (fresh / "results/models").rglob("*") if p.is_file()} == new_data_run.before
    summary = pd.read_csv(fresh / paths.evaluation_files("rpn", "user_scans")["summary"], sep="\t")
    point = json.loads((fresh / "results/models/rpn/operating_point.json").read_text())
    assert (summary["threshold"] == point["threshold"]).all()  # the model folder's operating point
    assert not (fresh / paths.evaluation_files("rpn", "new_scans")["summary"]).exists()  # no annotations: census only
    counts = pd.read_csv(fresh / paths.census_files("rpn", "new_scans")["counts"], sep="\t", dtype={"subject": str})
    assert counts["subject"].tolist() == ["001"]
    assert_figure(fresh / paths.figure("new_scans", "candidate_panels")["png"])
    # the NRRD scan's census map lies on its own grid, as the same scan's NIfTI header gives it
    original = nib.load(str(Path(new["datasets"]["user_scans"]["bids_dir"]) / "sub-001/anat/sub-001_part-mag_swi.nii.gz"))
    exported = nib.load(str(fresh / paths.export_folder("rpn", "new_scans") / "sub-001_desc-cmb_dseg.nii.gz"))
    assert exported.shape == original.shape
    np.testing.assert_allclose(exported.affine, original.affine, atol=1e-3)
    # dropping a dataset from the list leaves the other's outputs as they are
    result = snakemake(fresh, {**new, "datasets": {"user_scans": new["datasets"]["user_scans"]}}, "-n")
    assert result.returncode == 0 and "Nothing to be done" in result.stdout, result.stdout[-3000:]


@pytest.mark.skipif(not SHARED_DICOM.is_dir(), reason=f"shared test data not found at {SHARED_DICOM}")
def test_a_real_scanners_dicom_goes_through_conversion_preprocessing_detection_and_census(new_data_run):
    """The shared Siemens DICOM (a 3 T dual-echo GRE of a cylindrical phantom, raw scanner
    phase) with the tiny trained models: it proves the files go all the way through, not
    detection quality (it holds no CMB, and no brain)."""
    result = new_data_run.run.wait()
    fresh = new_data_run.run.workdir
    assert result.returncode == 0, result.stdout[-3000:]
    assert "synthesize_template" not in result.stdout  # the tiny run's template was reused
    assert {p: sha256(p) for p in SHARED_DICOM.rglob("*") if p.is_file()} == new_data_run.before  # the DICOM only read
    manifest = pd.read_csv(fresh / "results/inputs/scanner/manifest.tsv", sep="\t", dtype=str, keep_default_na=False)
    row = manifest.set_index("key").loc["Siemens"]
    assert "scanner units -4096..4095" in row["phase_units"] and (row["phase_kind"], row["phase_filter"]) == ("raw", "homodyne")
    files = {k: fresh / v for k, v in paths.preproc_subject_files("scanner", "Siemens").items()}
    assert json.loads(files["sidecar"].read_text())["Phase"]["Filter"] == "homodyne"
    phase = nib.load(files["phase"]).get_fdata()
    brain = nib.load(files["brainmask"]).get_fdata() > 0
    assert np.median(np.abs(phase[brain])) < 0.05  # background field removed (scaled phase, 1 = pi)
    quality = pd.read_csv(fresh / paths.registration_quality("scanner"), sep="\t")
    assert quality["flag"].tolist() == ["ok"] and 900 < quality["brain_volume_ml"].iloc[0] < 2000
    converted = nib.load(fresh / "results/dicom/scanner/sub-Siemens/anat/sub-Siemens_part-mag_swi.nii.gz")
    candidates = pd.read_csv(fresh / paths.candidate_files("rpn", "scanner")["table"], sep="\t", dtype={"subject": str})
    assert len(candidates) > 0
    np.testing.assert_allclose(voxel_to_world(converted.affine, candidates[["i", "j", "k"]].to_numpy()),
                               candidates[["x", "y", "z"]].to_numpy(), atol=2e-3)  # world mm of the converted image
    counts = pd.read_csv(fresh / paths.census_files("rpn", "scanner")["counts"], sep="\t", dtype={"subject": str})
    assert counts["subject"].tolist() == ["Siemens"]
