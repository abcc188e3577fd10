import ants
import numpy as np

from cmbflow.io.coords import ras_to_lps, voxel_to_world
from cmbflow.localization.coordinates import COORDINATE_SCALE_MM, template_coordinates
from cmbflow.preprocessing.grid import cropped_grid

SHIFT_LPS = np.array([12.0, -7.0, 30.0])  # a known subject -> template point mapping


def _oblique_las_grid():
    """The model-ready grid of an LAS image tilted 15 degrees about the left-right axis."""
    tilt = np.deg2rad(15.0)
    rotation = np.array([[1, 0, 0], [0, np.cos(tilt), -np.sin(tilt)], [0, np.sin(tilt), np.cos(tilt)]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([-1.2, 1.0, 2.5])
    affine[:3, 3] = [40.0, -60.0, -30.0]
    return cropped_grid(np.ones((30, 40, 12), bool), affine, (1.0, 1.0, 2.0), margin_mm=0.0)


def test_coordinate_channels_hold_each_voxels_template_position(tmp_path):
    transform = ants.create_ants_transform(transform_type="AffineTransform", dimension=3, translation=tuple(SHIFT_LPS))
    path = str(tmp_path / "from-template_to-native.mat")
    ants.write_transform(transform, path)
    grid = _oblique_las_grid()
    channels = template_coordinates(grid.affine, grid.shape, path)
    assert channels.shape == (3, *grid.shape) and channels.dtype == np.float32
    world = voxel_to_world(grid.affine, np.indices(grid.shape).reshape(3, -1).T)
    expected = (world + ras_to_lps(SHIFT_LPS)[0]) / COORDINATE_SCALE_MM  # the LPS shift, in RAS+
    np.testing.assert_allclose(channels.reshape(3, -1).T, expected, atol=1e-4)
    # x grows along the first array axis, y along the second, z along the third (RAS-aligned grid)
    assert channels[0, 1, 0, 0] > channels[0, 0, 0, 0] and channels[1, 0, 1, 0] > channels[1, 0, 0, 0]
    assert channels[2, 0, 0, 1] > channels[2, 0, 0, 0]
