"""The model-ready grid: axes along world RAS+, a target spacing, cropped to the head.

Every subject of every dataset is resampled onto such a grid, so the networks see one
orientation (B0 along the third array axis, left-right along the first) whatever the
scanner stored (LAS, oblique, ...). The grid stays in the subject's own world frame: a
voxel of it and of the original image with the same world mm RAS+ are the same point,
so positions found on the grid are positions on the user's scan.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cmbflow.io.coords import grid_world_coordinates, voxel_sizes


@dataclass(frozen=True)
class Grid:
    """A voxel grid: ``affine`` maps voxel index -> world mm RAS+; ``shape`` is ``(3,)``."""

    affine: np.ndarray
    shape: tuple[int, int, int]

    @property
    def spacing(self) -> np.ndarray:
        return voxel_sizes(self.affine)


def world_extent(mask: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World mm RAS+ bounding box ``(lo, hi)`` of the voxels of ``mask`` (whole voxels,
    not just their centres), for any orientation of the grid."""
    if not mask.any():
        raise ValueError("cannot take the extent of an empty mask")
    centres = grid_world_coordinates(affine, mask.shape)[mask > 0]
    half_voxel = 0.5 * np.abs(affine[:3, :3]).sum(axis=1)  # world half-extent of one voxel
    return centres.min(axis=0) - half_voxel, centres.max(axis=0) + half_voxel


def world_aligned_grid(lo_mm: np.ndarray, hi_mm: np.ndarray, spacing_mm) -> Grid:
    """Smallest RAS+-aligned grid of ``spacing_mm`` whose voxels cover ``[lo_mm, hi_mm]``
    (world mm RAS+), centred on the box."""
    lo, hi = np.asarray(lo_mm, float), np.asarray(hi_mm, float)
    spacing = np.broadcast_to(np.asarray(spacing_mm, float), (3,))
    shape = np.maximum(np.ceil((hi - lo) / spacing - 1e-6).astype(int), 1)
    first_centre = (lo + hi) / 2 - (shape - 1) / 2 * spacing
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = first_centre
    return Grid(affine, tuple(int(n) for n in shape))


def cropped_grid(mask: np.ndarray, affine: np.ndarray, spacing_mm, margin_mm: float) -> Grid:
    """The model-ready grid: RAS+-aligned, ``spacing_mm``, covering ``mask`` (on ``affine``)
    plus ``margin_mm`` on every side."""
    lo, hi = world_extent(mask, affine)
    return world_aligned_grid(lo - margin_mm, hi + margin_mm, spacing_mm)
