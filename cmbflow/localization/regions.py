"""Regions at candidate positions, and anatomical filtering.

A region map is a MARS label volume on the model-ready grid (0 outside, 1 lobar, 2 deep,
3 infratentorial; :data:`cmbflow.atlas.REGION_NAMES`): the localization network's
segmentation or the warped atlas of preprocessing. A candidate is looked up at the nearest
voxel to its box centre; one outside every region (or outside the grid) is not kept.

Before the lookup, each region is grown by ``margin_mm`` into the outside
(:func:`grow_regions`): a map's brain edge is uncertain by about a voxel (registration, the
network's 2 mm resolution), and a cortical CMB's box centre can fall just beyond it. Measured
on the default synthetic cohort, 1 mm keeps the true CMBs that a strict lookup dropped on the
external site.

Which map decides (config ``localization``): ``network``, ``atlas``, or ``either`` (the
default): a candidate is removed only when both maps place it outside, and its region is the
network's where the network places it inside, else the atlas's. Removing a true CMB is the
costly error, and the two maps err at different places of the brain edge (the network at the
occipital / tentorial edge, the atlas where registration misses the cortex): on the default
cohort, ``either`` kept every true CMB that one map alone dropped, for at most one more false
positive per dataset.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage

from cmbflow.atlas import OUTSIDE, REGION_NAMES

MAPS = ("network", "atlas")
CHOICES = (*MAPS, "either")


def maps_of(choice: str) -> tuple[str, ...]:
    """The region maps that localization ``choice`` reads."""
    if choice not in CHOICES:
        raise ValueError(f"localization must be one of {', '.join(CHOICES)}, not {choice!r}")
    return MAPS if choice == "either" else (choice,)


def chosen_codes(codes: dict[str, np.ndarray], choice: str) -> np.ndarray:
    """Region codes of localization ``choice`` from the codes of each map in ``codes``
    (same shape): the network's, the atlas's, or for ``either`` the network's where it is
    inside a region and the atlas's elsewhere."""
    missing = [name for name in maps_of(choice) if name not in codes]
    if missing:
        raise ValueError(f"localization is {choice!r} but no {' or '.join(missing)} region map was given")
    if choice == "either":
        return np.where(codes["network"] != OUTSIDE, codes["network"], codes["atlas"])
    return codes[choice]


def regions_at(grid_voxels: np.ndarray, region_map: np.ndarray) -> np.ndarray:
    """Region codes ``(N,)`` at continuous voxel indices ``(N, 3)`` of the grid of ``region_map``
    (nearest voxel; outside the grid -> outside)."""
    voxels = np.rint(np.asarray(grid_voxels, float).reshape(-1, 3)).astype(int)
    inside = np.all((voxels >= 0) & (voxels < np.array(region_map.shape)), axis=1)
    codes = np.full(len(voxels), OUTSIDE, int)
    codes[inside] = region_map[tuple(voxels[inside].T)]
    return codes


# A margin spanning more voxel offsets than this is grown with scipy's whole-volume distance transform
# (about as long as 20 shifted comparisons on the default grid).
MAX_MARGIN_OFFSETS = 20


def margin_offsets(spacing, margin_mm: float) -> np.ndarray:
    """Voxel offsets ``(N, 3)`` within ``margin_mm`` (world mm, Euclidean, with the voxel
    ``spacing``) of a voxel, itself excluded, nearest first (ties in a fixed order)."""
    spacing = np.asarray(spacing, float)
    reach = np.floor(margin_mm / spacing + 1e-9).astype(int)
    axes = [np.arange(-r, r + 1) for r in reach]
    offsets = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    distance = np.linalg.norm(offsets * spacing, axis=1)
    within = (distance > 0) & (distance <= margin_mm + 1e-9)
    order = np.lexsort((*offsets[within].T[::-1], distance[within]))
    return offsets[within][order]


def grow_regions(region_map: np.ndarray, spacing, margin_mm: float) -> np.ndarray:
    """``region_map`` with every outside voxel within ``margin_mm`` (world mm, Euclidean, with
    the voxel ``spacing``) of a region given that nearest region's code (equidistant regions:
    the first in :func:`margin_offsets`' order).

    A margin of a voxel or two is a few shifted comparisons of the map: on the default grid a
    tenth of the time of scipy's distance transform over the whole volume, which every candidate
    table, report and evaluation of a subject repeated (read the maps as ``uint8``, as
    :func:`read_region_map` does: int64 codes move eight times the bytes). Wider margins take the
    distance transform."""
    outside = region_map == OUTSIDE
    if margin_mm <= 0 or outside.all() or not outside.any():
        return region_map
    offsets = margin_offsets(spacing, margin_mm)
    if len(offsets) > MAX_MARGIN_OFFSETS:
        distance, nearest = ndimage.distance_transform_edt(outside, sampling=tuple(float(v) for v in spacing),
                                                           return_indices=True)
        grown = region_map[tuple(nearest)]
        grown[distance > margin_mm] = OUTSIDE
        return grown
    grown = region_map.copy()
    open_voxels = outside.copy()
    for offset in offsets:  # on overlapping views: a voxel at index reads its neighbour at index + offset
        target = tuple(slice(max(-o, 0), n - max(o, 0)) for o, n in zip(offset, region_map.shape))
        source = tuple(slice(max(o, 0), n + min(o, 0)) for o, n in zip(offset, region_map.shape))
        neighbour, still_open = region_map[source], open_voxels[target]
        take = still_open & (neighbour != OUTSIDE)
        np.copyto(grown[target], neighbour, where=take)
        still_open &= ~take
    return grown


def read_region_map(path: str, margin_mm: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """A region map NIfTI as ``(codes (I, J, K), affine)`` (voxel -> world mm RAS+), grown by
    ``margin_mm`` (:func:`grow_regions`)."""
    image = nib.load(path)
    codes = np.asarray(image.dataobj).astype(np.uint8)  # MARS codes 0-3
    return grow_regions(codes, image.header.get_zooms()[:3], margin_mm), image.affine


def read_chosen_regions(paths: dict[str, str], choice: str, margin_mm: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The region map of localization ``choice`` (:func:`chosen_codes`) from the map files
    ``paths`` (name -> NIfTI on one grid), each grown by ``margin_mm`` first; with its affine."""
    read = {name: read_region_map(paths[name], margin_mm) for name in maps_of(choice) if name in paths}
    codes = chosen_codes({name: codes for name, (codes, _) in read.items()}, choice)
    return codes, next(iter(read.values()))[1]


def add_regions(table: pd.DataFrame, grid_voxels: np.ndarray, maps: dict[str, np.ndarray], choice: str) -> pd.DataFrame:
    """Add ``region_<name>`` for each map of ``maps`` (``network`` and/or ``atlas``), ``region``
    (that of localization ``choice``, :func:`chosen_codes`) and ``kept`` (``region`` is not
    outside) to ``table``, whose rows lie at ``grid_voxels (N, 3)`` (continuous voxel indices
    of the maps' model-ready grid)."""
    out = table.copy()
    voxels = np.asarray(grid_voxels, float).reshape(-1, 3)
    codes = {name: regions_at(voxels, region_map) for name, region_map in maps.items()}
    for name, at in codes.items():
        out[f"region_{name}"] = [REGION_NAMES[int(code)] for code in at]
    out["region"] = [REGION_NAMES[int(code)] for code in chosen_codes(codes, choice)]
    out["kept"] = out["region"] != REGION_NAMES[OUTSIDE]
    return out
