"""Workflow jobs of localization: segment a dataset's regions, localize a variant's detections.

The network segments each test subject's whole model-ready volume once (sliding window),
rather than a patch per candidate: one pass serves every variant's candidates and gives the
Dice of the segmentation for the evaluation. A candidate's region is the map's label at its
centre (nearest voxel), from the network's map and from the warped atlas; config
``localization`` (``network`` | ``atlas`` | ``either``) chooses which sets ``region`` and ``kept``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from cmbflow.device import default_device
from cmbflow.inference.detect import check_spacing
from cmbflow.io.coords import world_to_voxel
from cmbflow.io.nifti import save_volume
from cmbflow.localization.census import census
from cmbflow.localization.network import LocalizerSettings, load_region_subject, segment_regions
from cmbflow.localization.regions import add_regions, read_region_map
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


def localize_detections(detections: pd.DataFrame, subjects: dict[str, dict[str, str]], choice: str,
                        margin_mm: float = 0.0) -> pd.DataFrame:
    """``detections`` (all subjects; ``x, y, z`` world mm RAS+) with ``region_network``,
    ``region_atlas``, ``region`` and ``kept`` (:func:`cmbflow.localization.regions.add_regions`).
    ``subjects``: key -> ``network`` (localizer map) and ``atlas`` (warped atlas) on the same
    model-ready grid, whose regions are grown by ``margin_mm``; rows keep their order."""
    parts = []
    for key, files in subjects.items():
        rows = detections[detections["subject"].astype(str) == str(key)]
        (network, _), (atlas, affine) = (read_region_map(files[name], margin_mm) for name in ("network", "atlas"))
        grid_voxels = world_to_voxel(affine, rows[["x", "y", "z"]].to_numpy(float))
        parts.append(add_regions(rows, grid_voxels, {"network": network, "atlas": atlas}, choice))
    if not parts:
        return detections.assign(region_network=[], region_atlas=[], region=[], kept=[])
    localized = pd.concat(parts)
    return localized.loc[detections.index]  # the order of the detections (= rows of features.npy)


def run_localization(detections: str, subjects: dict[str, dict[str, str]], choice: str, margin_mm: float,
                     score_threshold: float, outputs: dict[str, str], subject_tables: dict[str, str],
                     threshold_source: str = "") -> pd.DataFrame:
    """Localize a variant's detection table and write the candidate tables (all subjects and
    per subject) and the census (``cmbs`` and ``counts`` of :func:`cmbflow.paths.census_files`;
    the counts name the threshold and ``threshold_source``)."""
    table = pd.read_csv(detections, sep="\t", dtype={"subject": str, "candidate": str})
    missing = sorted(set(table["subject"]) - set(subjects))
    if missing:
        raise ValueError(f"{detections}: candidates of subjects {missing} that have no region maps")
    localized = localize_detections(table, subjects, choice, margin_mm)
    for key, path in subject_tables.items():
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        localized[localized["subject"] == key].to_csv(path, sep="\t", index=False, float_format="%.4f")
    cmbs, counts = census(localized, list(subjects), score_threshold)
    counts = counts.assign(threshold=score_threshold, threshold_source=threshold_source)
    for name, frame in (("table", localized), ("cmbs", cmbs), ("counts", counts)):
        Path(outputs[name]).parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(outputs[name], sep="\t", index=False, float_format="%.4f")
    log.info("%d candidates, %d kept (%s); census at score >= %g: %d CMBs", len(localized), int(localized["kept"].sum()),
             choice, score_threshold, len(cmbs))
    return localized
