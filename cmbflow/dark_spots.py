"""Dark spots of an SWI volume: grey-level closing and the spots it fills.

On SWI, CMBs and their mimics (veins, calcifications, the dark band at the brain's edge) are
dark structures a few millimetres wide. A grey-level closing with a box wider than them
fills them with the tissue around; the difference (a black top-hat) marks them. Two stages
use this: the localization network reads the closed SWI (a CMB must not read as "outside"),
and detector training centres a share of its patches on the darkest non-CMB spots (the
mimics it must learn to reject, which random patches rarely show). All arrays are on one
voxel grid; sizes are in mm, with the grid's ``spacing``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def close_dark_spots(swi: np.ndarray, spacing, size_mm: float) -> np.ndarray:
    """Grey-level closing of ``swi`` with a box of ``size_mm`` per axis (odd voxel counts):
    dark structures narrower than the box (CMBs, veins) take the intensity of the tissue
    around them, larger ones (the background outside the head) keep their shape. The volume
    is padded with its darkest value first, so that a thin strip of background between the
    head and the volume's edge is not taken for a dark spot."""
    if size_mm <= 0:
        return swi
    size = [int(2 * np.floor(size_mm / (2 * float(step))) + 1) for step in spacing]
    padded = np.pad(swi, [(n, n) for n in size], constant_values=swi.min())
    closed = ndimage.grey_closing(padded, size=size)
    return closed[tuple(slice(n, -n) for n in size)]


def dark_spot_voxels(swi: np.ndarray, within: np.ndarray, spacing, size_mm: float, share: float) -> np.ndarray:
    """Voxel indices ``(N, 3)`` of the darkest spots narrower than ``size_mm``: the ``share``
    of the ``within`` voxels (bool mask) where the closing (:func:`close_dark_spots`) lifts
    ``swi`` the most. Empty when ``within`` is empty or ``share`` is 0."""
    n_within = int(within.sum())
    count = int(round(share * n_within))
    if count == 0:
        return np.zeros((0, 3), int)
    depth = (close_dark_spots(swi, spacing, size_mm) - swi)[within]
    chosen = np.argpartition(depth, n_within - count)[n_within - count:]
    return np.argwhere(within)[chosen]


def dark_spot_structures(voxels: np.ndarray, shape) -> list[np.ndarray]:
    """``voxels (N, 3)`` (:func:`dark_spot_voxels`) grouped into connected structures
    (26-connected), each an ``(n, 3)`` array: one vein, one calcification, one artefact."""
    if len(voxels) == 0:
        return []
    mask = np.zeros(shape, bool)
    mask[tuple(np.asarray(voxels).T)] = True
    labels, count = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    ids = labels[tuple(np.asarray(voxels).T)]
    order = np.argsort(ids, kind="stable")
    return np.split(np.asarray(voxels)[order], np.flatnonzero(np.diff(ids[order])) + 1)
