"""A tiny training run and inference through the package's entry points (what the rules call)."""

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import torch

from cmbflow.inference.run import run_detection
from cmbflow.io.nifti import save_volume
from cmbflow.training.variant import train_variant, variant_settings
from tests.config_defaults import validated_config
from tests.training.test_patches import SPACING, _subject

_TINY_DETECTOR = {
    "variants": {"rpn": {"fuse_levels": False, "hspl": False}, "rpn_ffm_hspl": {"fuse_levels": True, "hspl": True}},
    "anchors_mm": [3.0, 6.0],
    "network": {"channels": [4, 8, 8, 16], "strides": [[1, 1, 1], [2, 2, 1], [2, 2, 2], [2, 2, 2]], "feature_dim": 8},
    "training": {"patch_size": [16, 16, 8], "batch_size": 2, "iterations": 4, "learning_rate": 0.002, "cmb_fraction": 0.5,
                 "validation_fraction": 0.3, "validation_every": 2, "validation_patches": 2, "checkpoint_every": 2, "seed": 0,
                 "cpu_bfloat16": False},  # float32: bfloat16 on maps this small is not always finite (config.yaml)
    "inference": {"roi_size": [32, 32, -1], "overlap": 0.25, "score_threshold": 0.0, "max_candidates": 5, "nms_iou": 0.1,
                  "brain_margin_mm": 2.0},
}
CONFIG = validated_config(detector=_TINY_DETECTOR)
TINY_DETECTOR = CONFIG["detector"]


def _write_subject(folder, key, lesion):
    subject = _subject(key, lesion)
    affine = np.diag([*SPACING, 1.0])
    files = {kind: str(folder / f"{key}_{kind}.nii.gz") for kind in ("swi", "phase", "brainmask", "cmb_mask")}
    save_volume(files["swi"], subject.image[0], affine)
    save_volume(files["phase"], subject.image[1], affine)
    save_volume(files["brainmask"], subject.brain.astype(np.uint8), affine)
    save_volume(files["cmb_mask"], subject.labels, affine)
    files["markers"] = str(folder / f"{key}_markers.tsv")
    pd.DataFrame({"label": list(subject.diameters), "radius_mm": [d / 2 for d in subject.diameters.values()]}).to_csv(
        files["markers"], sep="\t", index=False)
    return files


def test_tiny_training_writes_a_model_folder_that_inference_reads(tmp_path):
    lesions = {"a": (20, 12, 10), "b": None, "c": (15, 25, 8)}
    subjects = {f"tiny/{key}": _write_subject(tmp_path, key, lesion) for key, lesion in lesions.items()}
    outputs = {kind: str(tmp_path / "model" / name) for kind, name in
               (("weights", "model.pt"), ("card", "model_card.json"), ("curves", "curves.tsv"), ("curves_png", "curves.png"))}
    train_variant("rpn_ffm_hspl", CONFIG, subjects, SPACING, outputs, str(tmp_path / "ckpt/checkpoint.pt"), ["tiny/d"])

    state = torch.load(outputs["weights"], weights_only=True)
    assert set(state) == {"detector", "prototypes"}
    card = json.loads(open(outputs["card"]).read())
    assert card["variant"] == "rpn_ffm_hspl" and card["spacing_mm"] == list(SPACING) and card["anchors_mm"] == [3.0, 6.0]
    assert card["network"]["fuse_levels"] is True and len(card["input_channels"]) == 2
    assert sorted(card["data_split"]["train"] + card["data_split"]["validation"]) == sorted(subjects)
    assert len(card["data_split"]["validation"]) == 1 and card["data_split"]["test"] == ["tiny/d"]
    assert card["resolved_config"]["detector"] == TINY_DETECTOR and card["versions"]["torch"] == torch.__version__
    assert card["git_commit"]
    curves = pd.read_csv(outputs["curves"], sep="\t")
    assert list(curves["iteration"]) == [2, 4]

    originals = {key: files["swi"] for key, files in subjects.items()}  # the original grid is the model grid here
    detect = {key.split("/")[1]: {"files": files, "original": originals[key]} for key, files in subjects.items()}
    tables = {key: str(tmp_path / "cand" / f"sub-{key}.tsv") for key in detect}
    maps = {key: str(tmp_path / "cand" / f"sub-{key}_probseg.nii.gz") for key in detect}
    out = {"table": str(tmp_path / "cand/candidates.tsv")}
    candidates = run_detection(outputs["weights"], outputs["card"], detect, TINY_DETECTOR["inference"], out, tables, maps)

    assert len(candidates) == 15  # score threshold 0: max_candidates per subject
    written = pd.read_csv(out["table"], sep="\t", dtype={"subject": str})
    assert list(written.columns) == ["subject", "candidate", "x", "y", "z", "i", "j", "k", "score", "diameter_mm"]
    assert written["candidate"].is_unique and written["score"].between(0, 1).all()
    for key in detect:
        assert len(pd.read_csv(tables[key], sep="\t")) == 5
        probability = nib.load(maps[key])
        assert probability.shape == (40, 40, 20) and 0 <= probability.get_fdata().min() <= probability.get_fdata().max() <= 1


def test_variants_differ_only_in_their_switches():
    plain, full = variant_settings(TINY_DETECTOR, "rpn"), variant_settings(TINY_DETECTOR, "rpn_ffm_hspl")
    assert (plain.fuse_levels, plain.hspl, full.fuse_levels, full.hspl) == (False, False, True, True)
    assert {k: v for k, v in plain.__dict__.items() if k not in ("fuse_levels", "hspl")} == \
        {k: v for k, v in full.__dict__.items() if k not in ("fuse_levels", "hspl")}


def test_a_one_channel_model_trains_chooses_its_operating_point_and_detects_without_phase_files(tmp_path):
    """inputs [swi]: every step a model goes through reads the channels its card names, so
    subjects of a dataset without phase (no phase file at all) go through all of them."""
    from cmbflow.evaluation.operating_point import write_operating_point

    lesions = {"a": (20, 12, 10), "b": None, "c": (15, 25, 8)}
    subjects = {f"tiny/{key}": {kind: path for kind, path in _write_subject(tmp_path, key, lesion).items() if kind != "phase"}
                for key, lesion in lesions.items()}
    detector = {**TINY_DETECTOR, "variants": {"swi": {"fuse_levels": True, "hspl": False, "inputs": ["swi"]}}}
    outputs = {kind: str(tmp_path / "model" / name) for kind, name in
               (("weights", "model.pt"), ("card", "model_card.json"), ("curves", "curves.tsv"), ("curves_png", "curves.png"))}
    train_variant("swi", {**CONFIG, "detector": detector}, subjects, SPACING, outputs, str(tmp_path / "ckpt.pt"))
    card = json.loads(open(outputs["card"]).read())
    assert card["inputs"] == ["swi"] and card["network"]["in_channels"] == 1 and len(card["data_split"]["validation"]) == 1
    point = write_operating_point(outputs["weights"], outputs["card"], subjects, detector["inference"], tmp_path / "op.json",
                                  criterion={"criterion": "fp_rate", "fp_per_subject": 1.0, "background_ranks": [1, 2]})
    assert point["source"].startswith("validation subjects")
    # the level a site's background is compared with (site adaptation): here the validation subject's top two
    assert point["background_ranks"] == [1, 2] and 0.0 < point["background_score"] < 1.0
    # Validation subjects of a home site and of a training-only dataset: the point is chosen on
    # the home site's alone when the rule names it, on all of them otherwise.
    mixed = {**card, "data_split": {**card["data_split"], "validation": ["tiny/a", "rand/b"]}}
    Path(tmp_path / "mixed_card.json").write_text(json.dumps(mixed))
    pool = {**subjects, "rand/b": subjects["tiny/b"]}
    home = write_operating_point(outputs["weights"], tmp_path / "mixed_card.json", pool, detector["inference"],
                                 tmp_path / "home.json", home_datasets=["tiny"])
    assert home["subjects"] == ["tiny/a"] and home["source"].endswith("those of the home site (tiny) only")
    every = write_operating_point(outputs["weights"], tmp_path / "mixed_card.json", pool, detector["inference"],
                                  tmp_path / "every.json")
    assert every["subjects"] == ["tiny/a", "rand/b"] and every["source"] == point["source"]
    detect = {key.split("/")[1]: {"files": files, "original": files["swi"]} for key, files in subjects.items()}
    out = {"table": str(tmp_path / "candidates.tsv")}
    tables = {key: str(tmp_path / f"sub-{key}.tsv") for key in detect}
    assert len(run_detection(outputs["weights"], outputs["card"], detect, detector["inference"], out, tables)) == 15
