"""Resampling onto another grid with ANTs, one documented interpolator per kind of image.

========  =====================================================================
kind      interpolation
========  =====================================================================
linear    trilinear (magnitude / SWI): no overshoot next to dark lesions, unlike
          B-spline or sinc, which ring around a 2 mm CMB.
phase     trilinear on cos and sin, then ``atan2``: the complex exponential is
          smooth across a wrap, the angle is not (averaging +3.1 and -3.1 rad
          gives 0 instead of pi).
mask      trilinear on the 0/1 mask, kept where >= 0.5: the boundary moves by
          at most half a voxel, nothing is shifted.
label     ANTs ``genericLabel`` (per-label Gaussian-weighted vote): labels are
          never mixed into values that do not exist (region atlas, CMB instances).
========  =====================================================================
"""

from __future__ import annotations

import ants
import numpy as np

from scipy import ndimage

from cmbflow.io.coords import voxel_to_world, world_to_voxel
from cmbflow.preprocessing.antsimage import empty_like_grid, to_ants
from cmbflow.preprocessing.grid import Grid

KINDS = ("linear", "phase", "mask", "label")


def _resample(array: np.ndarray, affine: np.ndarray, reference: ants.ANTsImage, interpolator: str) -> np.ndarray:
    image = to_ants(array, affine)
    return ants.resample_image_to_target(image, reference, interp_type=interpolator).numpy()


def resample_to_grid(array: np.ndarray, affine: np.ndarray, grid: Grid, kind: str) -> np.ndarray:
    """Resample ``array`` (voxel-indexed, on ``affine``) onto ``grid``; see the module table.

    Returns float32 for ``linear`` / ``phase`` (radians in [-pi, pi]), uint8 for ``mask``,
    int32 for ``label``. Points of the grid outside the source image get 0.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    reference = empty_like_grid(grid.shape, grid.affine)
    if kind == "linear":
        return _resample(array, affine, reference, "linear").astype(np.float32)
    if kind == "phase":
        cos = _resample(np.cos(array), affine, reference, "linear")
        sin = _resample(np.sin(array), affine, reference, "linear")
        return np.arctan2(sin, cos).astype(np.float32)
    if kind == "mask":
        return (_resample((array > 0).astype(np.float32), affine, reference, "linear") >= 0.5).astype(np.uint8)
    return np.rint(_resample(array.astype(np.float32), affine, reference, "genericLabel")).astype(np.int32)


def resample_lesions(labels: np.ndarray, affine: np.ndarray, grid: Grid, centres: dict[int, np.ndarray] | None = None) -> np.ndarray:
    """Resample instance labels (``label`` kind), then make sure every lesion keeps its centre:
    the grid voxel nearest to it carries its label. A 1-voxel CMB of a thick oblique slice can
    otherwise vanish between the new voxel centres, and training would lose it.

    ``centres``: world mm RAS+ ``(3,)`` per label (e.g. the annotated markers); the rest use
    the instance's centre of mass. Returns int32 labels on ``grid``.
    """
    resampled = resample_to_grid(labels, affine, grid, "label")
    ids = [int(v) for v in np.unique(labels) if v > 0]
    if not ids:
        return resampled
    mass = voxel_to_world(affine, np.array(ndimage.center_of_mass(labels > 0, labels, ids)).reshape(-1, 3))
    world = {label: np.asarray((centres or {}).get(label, mass[n]), float) for n, label in enumerate(ids)}
    for label, xyz in world.items():
        ijk = np.rint(world_to_voxel(grid.affine, xyz)[0]).astype(int)
        if np.all((ijk >= 0) & (ijk < np.array(grid.shape))):
            resampled[tuple(ijk)] = label
    return resampled
