"""Train the localization network once, on the internal training subjects, into its model folder."""

from __future__ import annotations

import logging
from pathlib import Path

from cmbflow.localization.coordinates import COORDINATE_SCALE_MM
from cmbflow.localization.network import LocalizerSettings, load_region_subject, settings_record, train_localizer
from cmbflow.atlas import REGION_NAMES
from cmbflow.models.card import normalization_record, provenance_record
from cmbflow.models.weights import save_model
from cmbflow.training.variant import validation_keys

log = logging.getLogger(__name__)


def input_channels(settings: LocalizerSettings) -> list[str]:
    """What each input channel of the localizer holds, in order (model card)."""
    image = ["swi: SWI magnitude, N4-corrected, brain percentiles mapped to 0..1"]
    if settings.use_phase:
        image.append("phase: phase_sign * radians / pi, in -1..1")
    return image + [f"template {axis}: world mm RAS+ of the template / {COORDINATE_SCALE_MM:g}" for axis in "xyz"]


def train_localizer_model(config: dict, subjects: dict[str, dict[str, str]], spacing, outputs: dict[str, str],
                          held_out: list[str] = (), workflow_dir: str = ".", show_progress: bool = False,
                          checkpoint: str | None = None) -> None:
    """Train the localizer with config ``localizer`` on ``subjects`` (``<dataset>/<key>`` ->
    preprocessed files with ``swi``, ``phase``, ``regions``, ``cmb_mask``, ``xfm_to_native``)
    and write the model folder ``outputs`` (:func:`cmbflow.paths.localizer_files`).
    ``checkpoint``: where a killed job resumes from (outside the outputs)."""
    settings = LocalizerSettings.from_config(config["localizer"])
    held_back = validation_keys(sorted(subjects), settings.validation_fraction, settings.seed)
    loaded = {name: load_region_subject(name, files, settings.use_phase, settings.closing_mm) for name, files in sorted(subjects.items())}
    train = [subject for name, subject in loaded.items() if name not in held_back]
    validation = [subject for name, subject in loaded.items() if name in held_back]
    state, curves = train_localizer(train, validation, settings, checkpoint, show_progress=show_progress)
    Path(outputs["weights"]).parent.mkdir(parents=True, exist_ok=True)
    card = {
        "name": "cmbflow localization network",
        "task": "MARS region segmentation (" + ", ".join(f"{code} {name}" for code, name in REGION_NAMES.items()) + ")",
        "input_channels": input_channels(settings),
        "coordinates": "template-space x, y, z of each voxel through the from-template_to-native transform of preprocessing",
        "spacing_mm": [float(v) for v in spacing],
        "grid": "world-aligned RAS+ (axes along R, A, S), cropped to the head (preprocessing)",
        "normalization": {**normalization_record(config["preprocessing"]), "swi_closing_mm": settings.closing_mm},
        "labels": "MARS atlas warped into each subject by preprocessing",
        "network": {"in_channels": settings.in_channels, "channels": list(settings.channels), "strides": list(settings.strides),
                    "pool": list(settings.pool)},
        "training": settings_record(settings),
        **provenance_record([s.key for s in train], [s.key for s in validation], held_out, curves, config, workflow_dir),
    }
    curves.to_csv(outputs["curves"], sep="\t", index=False)
    save_model(outputs, {"localizer": state}, card)
