"""Workflow job of localization: a variant's detections get their regions and the census.

A candidate's region is the label at its centre (nearest voxel) of the network's map
(:mod:`cmbflow.localization.segment`) and of the warped atlas; config ``localization``
(``network`` | ``atlas`` | ``either``) chooses which sets ``region`` and ``kept``. No network
runs here (no torch import: the job starts in a second).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from cmbflow.io.coords import world_to_voxel
from cmbflow.localization.census import census
from cmbflow.localization.regions import add_regions, read_region_map

log = logging.getLogger(__name__)


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
    return localized.loc[detections.index]  # the order of the detections


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
