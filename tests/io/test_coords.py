import numpy as np

from cmbflow.io.coords import grid_world_coordinates, lps_to_ras, ras_to_lps, voxel_to_world, world_to_voxel
from tests.conftest import AFFINE


def test_voxel_world_round_trip_on_flipped_affine():
    ijk = np.array([[0, 0, 0], [11, 13, 9], [2.5, 3.25, 1.0]])
    world = voxel_to_world(AFFINE, ijk)
    np.testing.assert_allclose(world[0], AFFINE[:3, 3])
    np.testing.assert_allclose(world[1], [6 - 11, -7 + 13, -9 + 18])
    np.testing.assert_allclose(world_to_voxel(AFFINE, world), ijk)


def test_ras_lps_negates_x_and_y_only():
    ras = np.array([[10.0, -20.0, 30.0]])
    np.testing.assert_allclose(ras_to_lps(ras), [[-10.0, 20.0, 30.0]])
    np.testing.assert_allclose(lps_to_ras(ras_to_lps(ras)), ras)


def test_subdivided_grid_averages_back_to_voxel_centres():
    fine = grid_world_coordinates(AFFINE, (3, 2, 2), subdivide=(2, 2, 3))
    coarse = fine.reshape(3, 2, 2, 2, 2, 3, 3).mean(axis=(1, 3, 5))
    np.testing.assert_allclose(coarse, grid_world_coordinates(AFFINE, (3, 2, 2)), atol=1e-5)
