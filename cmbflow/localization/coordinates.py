"""Coordinate channels of the localization network: where each voxel is, in **template space**.

For every voxel of the model-ready grid (world mm RAS+ of the subject) the saved
``from-template_to-native`` composite transform of preprocessing gives the template point it
corresponds to (ITK maps points opposite to images; see
:func:`cmbflow.preprocessing.registration.map_points`). Template coordinates are the frame that
is stable across subjects: the same anatomy gets the same values whatever the head's position,
tilt and size in the scanner, which raw image coordinates (even RAS-aligned) do not give.
Values are world mm of the template divided by :data:`COORDINATE_SCALE_MM`, so a head spans
about -1..1.
"""

from __future__ import annotations

import numpy as np

from cmbflow.io.coords import grid_world_coordinates
from cmbflow.preprocessing.registration import map_points

COORDINATE_SCALE_MM = 100.0


def template_coordinates(affine: np.ndarray, shape: tuple[int, int, int], xfm_to_native: str) -> np.ndarray:
    """``(3, D, H, W)`` float32: template x, y, z (world mm RAS+ / 100) of each voxel of the grid
    ``affine`` / ``shape`` (voxel -> world mm RAS+ of the subject)."""
    world = grid_world_coordinates(affine, tuple(shape)).reshape(-1, 3)
    template = map_points(world, xfm_to_native) / COORDINATE_SCALE_MM
    return np.ascontiguousarray(np.moveaxis(template.reshape(*shape, 3), -1, 0), dtype=np.float32)
