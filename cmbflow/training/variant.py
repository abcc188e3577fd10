"""Train one detector variant end to end: settings from config, subjects, the model folder.

A variant is a named set of switches in config ``detector.variants`` (``fuse_levels``,
``hspl``, and the ``inputs`` it reads: SWI and phase, or SWI alone for datasets without
phase) applied to the shared network and training settings, so the ablation of the paper
is three config entries, not three classes. ``architecture: retinanet`` swaps our network
for MONAI's RetinaNet (the baseline) under the same patches, budget and split.
"""

from __future__ import annotations

import logging
from pathlib import Path


from cmbflow.config import split_subjects
from cmbflow.io.model_input import PhaseScaling
from cmbflow.models.card import input_descriptions, normalization_record, provenance_record
from cmbflow.models.weights import save_model
from cmbflow.training.loop import TrainSettings, flat_options, settings_record, train_detector
from cmbflow.training.patches import load_subject

log = logging.getLogger(__name__)


def variant_settings(detector: dict, variant: str) -> TrainSettings:
    """Training settings of ``variant`` from config ``detector`` (network + training + switches)."""
    if variant not in detector["variants"]:
        raise ValueError(f"unknown detector variant {variant!r}; config detector.variants has {sorted(detector['variants'])}")
    return TrainSettings.from_config(flat_options(detector, variant))


def input_phase_scaling(detector: dict) -> PhaseScaling:
    """How a newly trained detector reads the phase (config ``detector.input``)."""
    return PhaseScaling.from_record(detector["input"], "config detector.input")  # the config keys are the card's


def validation_keys(keys: list[str], fraction: float, seed: int) -> list[str]:
    """The seeded share of training subjects held back for the validation curves (none for 0)."""
    if fraction <= 0 or len(keys) < 3:
        return []
    return sorted(key for key, part in split_subjects(keys, fraction, seed).items() if part == "test")


def network_record(settings: TrainSettings, spacing) -> dict:
    """What :func:`cmbflow.models.weights.build_detector` builds the network from (model card):
    the baseline's :func:`cmbflow.models.retinanet.build_retinanet` arguments, or the constructor
    arguments of our :class:`cmbflow.models.detector.CMBDetector`."""
    if settings.architecture == "retinanet":
        return {"architecture": "retinanet", "in_channels": len(settings.inputs), "anchors_mm": list(settings.anchors_mm),
                "spacing": [float(v) for v in spacing], "depth": settings.retinanet_depth}
    return {"architecture": "cmbflow", "in_channels": len(settings.inputs), "channels": list(settings.channels),
            "strides": [list(s) for s in settings.strides], "n_anchors": len(settings.anchors_mm),
            "feature_dim": settings.feature_dim, "fuse_levels": settings.fuse_levels}


def train_variant(variant: str, config: dict, subjects: dict[str, dict[str, str]], spacing, outputs: dict[str, str],
                  checkpoint: str, held_out: list[str] = (), workflow_dir: str = ".", show_progress: bool = False) -> None:
    """Train ``variant`` on ``subjects`` (``<dataset>/<key>`` -> preprocessed files of
    :func:`cmbflow.paths.preproc_subject_files`) and write the model folder ``outputs``
    (:func:`cmbflow.paths.model_files`). ``config`` is the resolved workflow config;
    ``held_out`` the internal test subjects (``<dataset>/<key>``), recorded in the card.
    ``show_progress``: a progress bar (config ``progress_bars``, not part of the model's config)."""
    detector = config["detector"]
    settings = variant_settings(detector, variant)
    training = detector["training"]
    held_back = validation_keys(sorted(subjects), training["validation_fraction"], training["seed"])
    scaling = input_phase_scaling(detector)
    train = [load_subject(name, files, scaling, settings.inputs) for name, files in sorted(subjects.items()) if name not in held_back]
    validation = [load_subject(name, files, scaling, settings.inputs) for name, files in sorted(subjects.items()) if name in held_back]
    log.info("variant %s: %d training, %d validation subjects; inputs %s", variant, len(train), len(validation),
             ", ".join(settings.inputs))
    state, curves = train_detector(train, validation, settings, checkpoint, show_progress=show_progress)
    Path(outputs["weights"]).parent.mkdir(parents=True, exist_ok=True)
    card = {
        "name": f"cmbflow CMB detector ({variant})" if settings.architecture == "cmbflow"
                else f"MONAI RetinaNet baseline ({variant}), trained by cmbflow",
        "variant": variant,
        "task": "cerebral microbleed detection: boxes with scores on the model-ready grid",
        "inputs": list(settings.inputs),  # what a dataset must have for this model to run on it
        "input_channels": input_descriptions(settings.inputs),
        "spacing_mm": [float(v) for v in spacing],
        "grid": "world-aligned RAS+ (axes along R, A, S), cropped to the head (preprocessing)",
        "normalization": {**normalization_record(config["preprocessing"]), **scaling.record()},
        "anchors_mm": list(settings.anchors_mm),
        "network": network_record(settings, spacing),
        "training": settings_record(settings),
        **provenance_record([s.key for s in train], [s.key for s in validation], held_out, curves, config, workflow_dir),
    }
    curves.to_csv(outputs["curves"], sep="\t", index=False)
    save_model(outputs, state, card)
