"""Regions at candidate positions, and anatomical filtering.

A region map is a MARS label volume on the model-ready grid (0 outside, 1 lobar, 2 deep,
3 infratentorial; :data:`cmbflow.atlas.REGION_NAMES`): the localization network's
segmentation or the warped atlas of preprocessing. A candidate is looked up at the nearest
voxel to its box centre; one outside every region (or outside the grid) is not kept.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cmbflow.atlas import OUTSIDE, REGION_NAMES

CHOICES = ("network", "atlas")


def regions_at(grid_voxels: np.ndarray, region_map: np.ndarray) -> np.ndarray:
    """Region codes ``(N,)`` at continuous voxel indices ``(N, 3)`` of the grid of ``region_map``
    (nearest voxel; outside the grid -> outside)."""
    voxels = np.rint(np.asarray(grid_voxels, float).reshape(-1, 3)).astype(int)
    inside = np.all((voxels >= 0) & (voxels < np.array(region_map.shape)), axis=1)
    codes = np.full(len(voxels), OUTSIDE, int)
    codes[inside] = region_map[tuple(voxels[inside].T)]
    return codes


def add_regions(table: pd.DataFrame, grid_voxels: np.ndarray, maps: dict[str, np.ndarray], choice: str) -> pd.DataFrame:
    """Add ``region_<name>`` for each map of ``maps`` (``network`` and/or ``atlas``), ``region``
    (the one of ``choice``) and ``kept`` (``region`` is not outside) to ``table``, whose rows
    lie at ``grid_voxels (N, 3)`` (continuous voxel indices of the maps' model-ready grid)."""
    if choice not in maps:
        raise ValueError(f"localization is {choice!r} but no {choice} region map was given")
    out = table.copy()
    voxels = np.asarray(grid_voxels, float).reshape(-1, 3)
    for name, region_map in maps.items():
        out[f"region_{name}"] = [REGION_NAMES[int(code)] for code in regions_at(voxels, region_map)]
    out["region"] = out[f"region_{choice}"]
    out["kept"] = out["region"] != REGION_NAMES[OUTSIDE]
    return out
