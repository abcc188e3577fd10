"""Resampling onto the model-ready grid keeps positions: RAS, LAS and oblique sources."""

import numpy as np
import pytest

from cmbflow.io.coords import grid_world_coordinates, voxel_to_world, world_to_voxel
from cmbflow.preprocessing.grid import cropped_grid, world_aligned_grid, world_extent
from cmbflow.preprocessing.resample import resample_lesions, resample_to_grid
from tests.io.test_coords import ORIENTED_AFFINES

SHAPE = (40, 36, 16)
TARGET_SPACING = (1.0, 1.0, 2.0)


def _blob(affine, centre_ijk, radius_mm):
    """A ball (world mm) around a voxel centre of the source grid, and that centre in world mm."""
    world = grid_world_coordinates(affine, SHAPE)
    centre = voxel_to_world(affine, centre_ijk)[0]
    return (np.linalg.norm(world - centre, axis=-1) <= radius_mm).astype(np.int32), centre


@pytest.mark.parametrize("name", sorted(ORIENTED_AFFINES))
def test_marker_lands_within_half_a_voxel_of_the_resampled_lesion(name):
    affine = ORIENTED_AFFINES[name]
    labels, marker = _blob(affine, (17, 20, 7), radius_mm=3.5)
    grid = cropped_grid(np.ones(SHAPE), affine, TARGET_SPACING, margin_mm=0)
    resampled = resample_to_grid(labels, affine, grid, "label")
    assert resampled.sum() > 0
    # the marker's voxel on the new grid carries the lesion ...
    ijk = np.rint(world_to_voxel(grid.affine, marker)[0]).astype(int)
    assert resampled[tuple(ijk)] == 1
    # ... and the lesion's centre of mass is within half a voxel of the marker, per world axis
    centroid = voxel_to_world(grid.affine, np.argwhere(resampled == 1).mean(axis=0))[0]
    assert np.all(np.abs(centroid - marker) <= 0.5 * np.array(TARGET_SPACING)), (centroid, marker)
    mask = resample_to_grid(labels, affine, grid, "mask")
    mask_centroid = voxel_to_world(grid.affine, np.argwhere(mask == 1).mean(axis=0))[0]
    assert np.all(np.abs(mask_centroid - marker) <= 0.5 * np.array(TARGET_SPACING))


@pytest.mark.parametrize("name", sorted(ORIENTED_AFFINES))
def test_linear_resampling_of_a_world_ramp_is_exact(name):
    """Values equal to the world x, y, z of each voxel stay equal to it on the new grid:
    any flip, LPS/RAS mix-up or half-voxel shift would show."""
    affine = ORIENTED_AFFINES[name]
    world = grid_world_coordinates(affine, SHAPE)
    grid = cropped_grid(np.ones(SHAPE), affine, TARGET_SPACING, margin_mm=0)
    target_world = grid_world_coordinates(grid.affine, grid.shape)
    source_ijk = world_to_voxel(affine, target_world.reshape(-1, 3)).reshape(*grid.shape, 3)
    inside = np.all((source_ijk >= 0) & (source_ijk <= np.array(SHAPE) - 1), axis=-1)  # interpolation, not extrapolation
    assert inside.mean() > 0.5
    for axis in range(3):
        resampled = resample_to_grid(world[..., axis], affine, grid, "linear")
        np.testing.assert_allclose(resampled[inside], target_world[..., axis][inside], atol=2e-3)


def test_phase_is_resampled_through_its_complex_exponential():
    affine = ORIENTED_AFFINES["RAS"]
    phase = np.full(SHAPE, np.pi - 0.05, np.float32)
    phase[::2] = -np.pi + 0.05  # alternating across the wrap: the angle averages to 0, the phasor to pi
    grid = world_aligned_grid(*world_extent(np.ones(SHAPE), affine), (1.5, 1.0, 2.0))
    resampled = resample_to_grid(phase, affine, grid, "phase")
    inside = resampled[2:-2, 2:-2, 2:-2]
    assert np.all(np.abs(inside) > np.pi - 0.06)


def test_world_aligned_grid_covers_an_oblique_image():
    affine = ORIENTED_AFFINES["oblique"]
    lo, hi = world_extent(np.ones(SHAPE), affine)
    grid = world_aligned_grid(lo, hi, TARGET_SPACING)
    corners = voxel_to_world(affine, np.array(np.meshgrid(*[[-0.5, n - 0.5] for n in SHAPE])).reshape(3, -1).T)
    np.testing.assert_allclose(corners.min(axis=0), lo, atol=1e-6)
    np.testing.assert_allclose(corners.max(axis=0), hi, atol=1e-6)
    first, last = voxel_to_world(grid.affine, [(0, 0, 0), np.array(grid.shape) - 1])
    assert np.all(first - 0.5 * np.array(TARGET_SPACING) <= lo + 1e-9)
    assert np.all(last + 0.5 * np.array(TARGET_SPACING) >= hi - 1e-9)
    np.testing.assert_allclose(grid.affine[:3, :3], np.diag(TARGET_SPACING))


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="kind must be one of"):
        resample_to_grid(np.zeros(SHAPE), ORIENTED_AFFINES["RAS"], world_aligned_grid((0, 0, 0), (4, 4, 4), 1.0), "cubic")


def test_a_one_voxel_lesion_of_a_thick_oblique_slice_keeps_its_centre_voxel():
    affine = ORIENTED_AFFINES["oblique"]
    labels = np.zeros(SHAPE, np.int32)
    labels[5, 30, 3] = 4
    marker = voxel_to_world(affine, (5, 30, 3))[0]
    grid = cropped_grid(np.ones(SHAPE), affine, (1.0, 1.0, 2.0), margin_mm=0)
    assert not resample_to_grid(labels, affine, grid, "label").any()  # vanishes between the new voxel centres ...
    resampled = resample_lesions(labels, affine, grid)  # ... unless its centre is kept
    ijk = np.rint(world_to_voxel(grid.affine, marker)[0]).astype(int)
    assert resampled[tuple(ijk)] == 4
    assert set(np.unique(resampled)) == {0, 4}
