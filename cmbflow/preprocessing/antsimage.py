"""numpy + NIfTI affine <-> ANTs images. The LPS/RAS crossing is in
:func:`cmbflow.io.coords.ants_geometry`; this module only packs arrays.

ANTs reads ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS`` when its thread pool starts, so
:func:`set_threads` must run before the first ANTs call of a process.
"""

from __future__ import annotations

import os

import ants
import numpy as np

from cmbflow.io.coords import affine_from_ants_geometry, ants_geometry


def set_threads(n: int) -> None:
    """Limit ITK/ANTs to ``n`` threads (call before any ANTs work in the process)."""
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(max(1, int(n)))


def to_ants(array: np.ndarray, affine: np.ndarray) -> ants.ANTsImage:
    """A float32 ANTs image of ``array`` (voxel-indexed) on the grid of ``affine`` (-> world mm RAS+)."""
    origin, spacing, direction = ants_geometry(affine)
    return ants.from_numpy(np.ascontiguousarray(array, dtype=np.float32), origin=tuple(origin),
                           spacing=tuple(spacing), direction=direction)


def from_ants(image: ants.ANTsImage) -> tuple[np.ndarray, np.ndarray]:
    """``(array, affine)`` of an ANTs image; the affine maps voxel index -> world mm RAS+."""
    return image.numpy(), affine_from_ants_geometry(image.origin, image.spacing, image.direction)


def empty_like_grid(shape: tuple[int, int, int], affine: np.ndarray) -> ants.ANTsImage:
    """A zero image on a grid, to serve as the reference of a resampling."""
    return to_ants(np.zeros(shape, np.float32), affine)
