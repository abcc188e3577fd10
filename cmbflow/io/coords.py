"""The one place where coordinate conventions are converted.

Conventions used everywhere in cmbflow:

* **voxel index** ``(i, j, k)``: position in the stored array, voxel centres at integers.
* **world mm, RAS+**: nibabel's scanner frame (x to the Right, y Anterior, z Superior).
  Every table of positions cmbflow writes is in this frame, in the user's original image.
* **world mm, LPS+**: the ITK / ANTs frame (x Left, y Posterior, z Superior). Only
  :func:`ras_to_lps` / :func:`lps_to_ras` cross between the two.
"""

from __future__ import annotations

import numpy as np

_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


def voxel_to_world(affine: np.ndarray, ijk: np.ndarray) -> np.ndarray:
    """Map voxel indices ``(N, 3)`` to world mm RAS+ ``(N, 3)`` with a NIfTI ``affine``."""
    ijk = np.atleast_2d(np.asarray(ijk, dtype=float))
    return ijk @ affine[:3, :3].T + affine[:3, 3]


def world_to_voxel(affine: np.ndarray, xyz: np.ndarray) -> np.ndarray:
    """Map world mm RAS+ ``(N, 3)`` to continuous voxel indices ``(N, 3)`` (not rounded)."""
    xyz = np.atleast_2d(np.asarray(xyz, dtype=float))
    inverse = np.linalg.inv(affine)
    return xyz @ inverse[:3, :3].T + inverse[:3, 3]


def ras_to_lps(xyz: np.ndarray) -> np.ndarray:
    """World mm RAS+ ``(N, 3)`` to world mm LPS+ (ITK/ANTs) ``(N, 3)``."""
    return np.atleast_2d(np.asarray(xyz, dtype=float)) @ _RAS_TO_LPS


def lps_to_ras(xyz: np.ndarray) -> np.ndarray:
    """World mm LPS+ (ITK/ANTs) ``(N, 3)`` to world mm RAS+ ``(N, 3)``."""
    return np.atleast_2d(np.asarray(xyz, dtype=float)) @ _RAS_TO_LPS


def ants_geometry(affine: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ITK/ANTs image geometry of a NIfTI ``affine`` (voxel index -> world mm RAS+).

    Returns ``(origin, spacing, direction)``: world mm LPS+ of voxel (0, 0, 0), voxel sizes
    in mm ``(3,)``, and the LPS+ direction of each voxel axis as the columns of ``(3, 3)``.
    This is what ITK itself does when it reads the NIfTI header.
    """
    spacing = voxel_sizes(affine)
    origin = ras_to_lps(affine[:3, 3])[0]
    direction = _RAS_TO_LPS @ direction_cosines(affine)
    return origin, spacing, direction


def affine_from_ants_geometry(origin, spacing, direction) -> np.ndarray:
    """Inverse of :func:`ants_geometry`: NIfTI affine (voxel index -> world mm RAS+)."""
    affine = np.eye(4)
    affine[:3, :3] = _RAS_TO_LPS @ np.asarray(direction, float) * np.asarray(spacing, float)
    affine[:3, 3] = lps_to_ras(np.asarray(origin, float))[0]
    return affine


def voxel_sizes(affine: np.ndarray) -> np.ndarray:
    """Voxel edge lengths in mm, ``(3,)``, from the columns of the affine."""
    return np.sqrt((affine[:3, :3] ** 2).sum(axis=0))


def world_axis_spacing(affine: np.ndarray) -> np.ndarray:
    """Voxel size along world x, y, z ``(3,)`` mm: each world axis takes the size of the
    array axis closest to it (LAS, permuted or oblique storage alike)."""
    closest = np.abs(direction_cosines(affine)).argmax(axis=1)  # array axis nearest to each world axis
    return voxel_sizes(affine)[closest]


def direction_cosines(affine: np.ndarray) -> np.ndarray:
    """Unit columns of the affine, ``(3, 3)``: the world RAS+ direction of each voxel axis."""
    return affine[:3, :3] / voxel_sizes(affine)


def grid_world_coordinates(affine: np.ndarray, shape: tuple[int, int, int], subdivide=(1, 1, 1)) -> np.ndarray:
    """World mm RAS+ of every (sub-)voxel centre of a grid, ``(*shape*subdivide, 3)`` float32.

    With ``subdivide=(a, b, c)`` each voxel is split into ``a*b*c`` sub-voxels whose centres
    sit at voxel index ``(n + 0.5) / a - 0.5`` along each axis, so averaging ``a*b*c``
    neighbours gives back the voxel.
    """
    axes = [
        ((np.arange(n * f, dtype=np.float32) + 0.5) / f - 0.5).astype(np.float32)
        for n, f in zip(shape, subdivide)
    ]
    rot = affine[:3, :3].astype(np.float32)
    out = np.empty((len(axes[0]), len(axes[1]), len(axes[2]), 3), dtype=np.float32)
    for row in range(3):
        out[..., row] = (
            rot[row, 0] * axes[0][:, None, None]
            + rot[row, 1] * axes[1][None, :, None]
            + rot[row, 2] * axes[2][None, None, :]
            + np.float32(affine[row, 3])
        )
    return out
