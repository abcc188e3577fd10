"""Fine-tuning a trained detector on a few annotated subjects of a new site (transfer learning).

MicrobleedNet's ``fine_tune`` in this workflow's terms: the parent model folder's weights are
the start, its network and training settings are kept (a model is only comparable to its
parent when only the data and the schedule change), and the same training loop runs on the
calibration subjects of one dataset (config ``datasets.<name>.calibration_subjects``), with
the iterations, learning rate and seed of config ``fine_tune.<name>``. Those subjects are
never scored. The new model folder's card names its parent (folder, sha256 of its
``model.pt``), the subjects used and the settings.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import torch

from cmbflow.io.checksum import sha256
from cmbflow.io.model_input import PhaseScaling, model_inputs
from cmbflow.models.card import provenance_record
from cmbflow.models.weights import save_model
from cmbflow.training.loop import TrainSettings, settings_record, train_detector
from cmbflow.training.patches import load_subject

log = logging.getLogger(__name__)

TUNED_KEYS = ("iterations", "learning_rate", "cmb_fraction", "seed")  # what fine_tune.<name> sets


def fine_tune_settings(parent_card: dict, options: dict, source: str = "the parent's model card") -> TrainSettings:
    """The parent's training settings with the fine-tuning schedule of ``options`` (no validation:
    the few tuning subjects are all used). ``source``: the card's path, for errors."""
    # A parent recorded before mimic patches existed was trained without them.
    parent = TrainSettings.from_record({"mimic_fraction": 0.0, **parent_card["training"], "inputs": model_inputs(parent_card)},
                                       source)
    return dataclasses.replace(parent, **{key: options[key] for key in TUNED_KEYS if key in options})


def fine_tune_detector(name: str, parent_weights: str, parent_card: str, options: dict, subjects: dict[str, dict[str, str]],
                       outputs: dict[str, str], checkpoint: str, held_out: list[str], config: dict,
                       workflow_dir: str = ".", show_progress: bool = False, subjects_loader=load_subject) -> dict:
    """Fine-tune the parent on ``subjects`` (``<dataset>/<key>`` -> preprocessed files, read by
    ``subjects_loader``) and write the model folder ``outputs`` (:func:`cmbflow.paths.model_files`).
    Returns the card."""
    parent = json.loads(Path(parent_card).read_text())
    settings = fine_tune_settings(parent, options, parent_card)
    parent_hash = sha256(parent_weights)
    initial = torch.load(parent_weights, map_location="cpu", weights_only=True)
    scaling = PhaseScaling.from_record(parent.get("normalization"), str(parent_card))  # the parent's input, kept
    train = [subjects_loader(key, files, scaling, settings.inputs) for key, files in sorted(subjects.items())]
    log.info("fine-tuning %s from %s (%s) on %d subjects of %s, %d iterations at learning rate %g", name,
             Path(parent_weights).parent, parent_hash[:12], len(train), options["dataset"], settings.iterations,
             settings.learning_rate)
    state, curves = train_detector(train, [], settings, checkpoint, show_progress=show_progress, initial_state=initial,
                                   tag=parent_hash)
    Path(outputs["weights"]).parent.mkdir(parents=True, exist_ok=True)
    card = {
        "inputs": list(settings.inputs),
        **{key: parent[key] for key in ("task", "input_channels", "spacing_mm", "grid", "normalization", "anchors_mm",
                                        "network")},
        "name": f"cmbflow CMB detector ({name}, fine-tuned from {parent.get('variant', 'a model folder')})",
        "variant": name,
        "parent": {"folder": str(Path(parent_weights).parent), "model_sha256": parent_hash,
                   "variant": parent.get("variant"), "git_commit": parent.get("git_commit")},
        "fine_tune": {"dataset": options["dataset"], "subjects": [s.key for s in train],
                      "settings": {key: options[key] for key in TUNED_KEYS if key in options}},
        "training": settings_record(settings),
        **provenance_record([s.key for s in train], [], held_out, curves, config, workflow_dir),
    }
    curves.to_csv(outputs["curves"], sep="\t", index=False)
    save_model(outputs, state, card)
    return card
