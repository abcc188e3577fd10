"""Fine-tuning: the parent's network and settings, the schedule of config fine_tune, the parent named in the card."""

from __future__ import annotations

import hashlib
import json

import numpy as np

from cmbflow.training.fine_tune import fine_tune_detector, fine_tune_settings
from cmbflow.training.loop import TrainSettings, settings_record, train_detector
from cmbflow.training.patches import SubjectVolumes
from cmbflow.models.weights import save_model

TINY = dict(channels=(4, 8, 8, 16), feature_dim=8, patch_size=(16, 16, 8), batch_size=2, iterations=2, validation_every=2,
            checkpoint_every=2, validation_patches=2, hspl=True, fuse_levels=True, cpu_bfloat16=False)  # float32 on tiny maps


def _subject(key: str) -> SubjectVolumes:
    rng = np.random.default_rng(0)
    image = rng.normal(0.5, 0.1, (2, 24, 24, 12)).astype(np.float32)
    labels = np.zeros((24, 24, 12), np.int32)
    labels[10:13, 10:13, 5:7] = 1
    image[0][labels > 0] = 0.0
    return SubjectVolumes(key, image, labels, np.ones((24, 24, 12), bool), {1: 3.0}, (1.0, 1.0, 2.0))


def test_fine_tuning_keeps_the_parents_network_and_changes_only_the_schedule():
    parent = {"training": settings_record(TrainSettings.defaults(**TINY))}
    settings = fine_tune_settings(json.loads(json.dumps(parent)), {"iterations": 7, "learning_rate": 1e-4, "dataset": "x"})
    assert settings.iterations == 7 and settings.learning_rate == 1e-4
    assert settings.channels == TINY["channels"] and settings.hspl and settings.patch_size == TINY["patch_size"]


def test_a_fine_tuned_model_folder_names_its_parent_and_its_subjects(tmp_path):
    settings = TrainSettings.defaults(**TINY)
    state, curves = train_detector([_subject("a")], [], settings, tmp_path / "parent.ckpt")
    parent = {k: str(tmp_path / "parent" / f) for k, f in (("weights", "model.pt"), ("card", "model_card.json"))}
    (tmp_path / "parent").mkdir()
    card = {"task": "t", "input_channels": ["swi", "phase"], "spacing_mm": [1.0, 1.0, 2.0], "grid": "g",
            "normalization": {"phase_scaling": "pi", "phase_mads": 6.0},
            "anchors_mm": [3.0], "network": {}, "variant": "rpn_ffm_hspl", "training": settings_record(settings)}
    save_model(parent, state, card)
    outputs = {k: str(tmp_path / "tuned" / f) for k, f in (("weights", "model.pt"), ("card", "model_card.json"),
                                                            ("curves", "curves.tsv"), ("curves_png", "curves.png"))}
    tuned = fine_tune_detector("tuned", parent["weights"], parent["card"], {"dataset": "site_b", "iterations": 2},
                               {"site_b/001": None}, outputs, str(tmp_path / "tuned.ckpt"), ["site_b/002"], {},
                               subjects_loader=lambda key, files, scaling, inputs: _subject(key))
    digest = hashlib.sha256(open(parent["weights"], "rb").read()).hexdigest()
    assert tuned["parent"] == {"folder": str(tmp_path / "parent"), "model_sha256": digest, "variant": "rpn_ffm_hspl",
                               "git_commit": None}
    assert tuned["fine_tune"]["subjects"] == ["site_b/001"] and tuned["data_split"]["test"] == ["site_b/002"]
    assert json.loads(open(outputs["card"]).read())["parent"]["model_sha256"] == digest
