"""Workflow job of localization: the network segments a dataset's subjects into MARS regions.

The network segments each test subject's whole model-ready volume once (sliding window),
rather than a patch per candidate: one pass serves every variant's candidates
(:mod:`cmbflow.localization.run`) and gives the Dice of the segmentation for the evaluation.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import nibabel as nib
import numpy as np

from cmbflow.device import default_device
from cmbflow.inference.detect import check_spacing
from cmbflow.io.nifti import save_volume
from cmbflow.localization.network import LocalizerSettings, load_region_subject, segment_regions
from cmbflow.logs import progress
from cmbflow.models.localizer import load_localizer

log = logging.getLogger(__name__)


def run_segmentation(weights: str, card: str, subjects: dict[str, dict[str, str]], outputs: dict[str, str],
                     show_progress: bool = False) -> None:
    """Segment every subject (key -> preprocessed files with ``swi``, ``phase``,
    ``xfm_to_native``) into MARS regions and write the uint8 map on its model-ready grid to
    ``outputs[key]``."""
    model, model_card = load_localizer(weights, card)
    settings = LocalizerSettings.from_record(model_card["training"], card)
    device = default_device()
    for key in progress(sorted(subjects), show_progress, "regions"):
        start = time.perf_counter()
        files = subjects[key]
        swi = nib.load(files["swi"])  # header only: refuse a wrong spacing before the heavy work
        check_spacing(model_card, swi.header.get_zooms()[:3], files["swi"])
        volumes = load_region_subject(key, files, settings.use_phase, settings.closing_mm)
        regions = segment_regions(model, volumes.image, settings, device)
        Path(outputs[key]).parent.mkdir(parents=True, exist_ok=True)
        save_volume(outputs[key], regions, swi.affine, dtype=np.uint8)
        log.info("sub-%s: regions in %.1f s on %s (voxels per class %s)", key, time.perf_counter() - start, device,
                 np.bincount(regions.ravel(), minlength=4).tolist())
