import ants
import numpy as np
import pytest

from cmbflow.io.coords import (affine_from_ants_geometry, ants_geometry, grid_world_coordinates, lps_to_ras, ras_to_lps,
                               voxel_to_world, world_axis_spacing, world_to_voxel)
from cmbflow.io.nifti import save_volume
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


ORIENTED_AFFINES = {
    "RAS": np.array([[1.0, 0, 0, -40], [0, 1.0, 0, -50], [0, 0, 2.0, -30], [0, 0, 0, 1]]),
    "LAS": AFFINE,
    # 12 degree tilt about left-right, LAS storage, anisotropic voxels
    "oblique": np.array([[-1.0, 0, 0, 10], [0, 1.2 * np.cos(0.21), -3.0 * np.sin(0.21), -20],
                         [0, 1.2 * np.sin(0.21), 3.0 * np.cos(0.21), 30], [0, 0, 0, 1]]),
}


@pytest.mark.parametrize("name", sorted(ORIENTED_AFFINES))
def test_ants_geometry_matches_what_itk_reads_from_the_file(tmp_path, name):
    affine = ORIENTED_AFFINES[name]
    path = tmp_path / f"{name}.nii.gz"
    save_volume(path, np.zeros((5, 6, 7), np.float32), affine)
    image = ants.image_read(str(path))
    origin, spacing, direction = ants_geometry(affine)
    np.testing.assert_allclose(origin, image.origin, atol=1e-4)
    np.testing.assert_allclose(spacing, image.spacing, atol=1e-5)
    np.testing.assert_allclose(direction, image.direction, atol=1e-5)
    np.testing.assert_allclose(affine_from_ants_geometry(*ants_geometry(affine)), affine, atol=1e-12)
    # the same voxel is the same world point, RAS+ (nibabel) vs LPS+ (ITK)
    ijk = (3, 1, 4)
    itk_point = ants.transform_index_to_physical_point(image, ijk)
    np.testing.assert_allclose(lps_to_ras(itk_point)[0], voxel_to_world(affine, ijk)[0], atol=1e-4)


def test_world_axis_spacing_follows_world_axes_for_permuted_storage():
    sagittal = np.array([[0, 0, 2.0, 0], [1.0, 0, 0, 0], [0, 1.2, 0, 0], [0, 0, 0, 1]])  # array axes: A, S, R
    np.testing.assert_allclose(world_axis_spacing(sagittal), [2.0, 1.0, 1.2])
    np.testing.assert_allclose(world_axis_spacing(ORIENTED_AFFINES["oblique"]), [1.0, 1.2, 3.0])
