import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from cmbflow.io.coords import world_to_voxel
from cmbflow.io.nifti import load_volume
from cmbflow.localization.regions import add_regions, grow_regions

# one worker builds the MARS atlas and the generator (session fixtures) and runs every test that reads them
pytestmark = pytest.mark.xdist_group("simulator")


@pytest.fixture(scope="module")
def mars_atlas(mars_atlas_file):
    return load_volume(mars_atlas_file, dtype=np.uint8)


def _candidates(points_mm, affine):
    """A candidate table and its voxels on the atlas grid."""
    voxels = world_to_voxel(affine, np.asarray(points_mm, float))
    return pd.DataFrame({"candidate": range(len(voxels))}), voxels


def test_a_candidate_in_the_cerebellum_is_infratentorial_and_one_outside_the_brain_is_dropped(mars_atlas):
    atlas, affine = mars_atlas
    # MNI mm: left cerebellar hemisphere, right frontal white matter, right putamen, above the skull
    table, voxels = _candidates([(-20, -60, -35), (40, 20, 40), (24, 4, 2), (0, 0, 95)], affine)
    out = add_regions(table, voxels, {"atlas": atlas}, "atlas")
    assert out["region"].tolist() == ["infratentorial", "lobar", "deep", "outside"]
    assert out["kept"].tolist() == [True, True, True, False]
    far = add_regions(*_candidates([(0, 0, 500)], affine), {"atlas": atlas}, "atlas")  # off the grid
    assert far["region"].tolist() == ["outside"] and not far["kept"].any()


def test_the_chosen_map_decides_and_both_are_recorded(mars_atlas):
    atlas, affine = mars_atlas
    table, voxels = _candidates([(-20, -60, -35)], affine)
    network = np.zeros_like(atlas)  # a network that calls everything outside
    out = add_regions(table, voxels, {"network": network, "atlas": atlas}, "network")
    assert (out["region_network"].tolist(), out["region_atlas"].tolist()) == (["outside"], ["infratentorial"])
    assert out["kept"].tolist() == [False]
    with pytest.raises(ValueError, match="no network region map"):
        add_regions(table, voxels, {"atlas": atlas}, "network")


def test_regions_grow_into_the_outside_by_the_margin_in_mm_with_the_nearest_label():
    region_map = np.zeros((12, 5, 5), np.int64)
    region_map[:4] = 1  # lobar up to i = 3
    region_map[8:] = 3  # infratentorial from i = 8
    grown = grow_regions(region_map, spacing=(2.0, 1.0, 1.0), margin_mm=2.0)  # one voxel along i
    assert grown[:, 2, 2].tolist() == [1, 1, 1, 1, 1, 0, 0, 3, 3, 3, 3, 3]
    assert np.array_equal(grow_regions(region_map, (2.0, 1.0, 1.0), 0.0), region_map)


@pytest.mark.parametrize("spacing, margin_mm", [((1.0, 1.0, 2.0), 1.0), ((0.5, 0.5, 1.0), 1.0), ((0.7, 0.7, 2.5), 4.0)])
def test_grown_regions_reach_exactly_the_margin_and_take_a_nearest_region(spacing, margin_mm):
    """Against scipy's distance transform per region: the same voxels grow, each to a region
    at the least distance (the last case is wide enough to take the distance transform itself)."""
    rng = np.random.default_rng(3)
    region_map = ndimage.zoom(rng.integers(0, 4, (6, 6, 4)), (5, 5, 4), order=0).astype(np.uint8)  # blocks of all four codes
    grown = grow_regions(region_map, spacing, margin_mm)
    distance = {code: ndimage.distance_transform_edt(region_map != code, sampling=spacing) for code in (1, 2, 3)}
    nearest = np.min(np.stack(list(distance.values())), axis=0)
    assert np.array_equal(grown > 0, nearest <= margin_mm + 1e-9)
    assert np.array_equal(grown[region_map > 0], region_map[region_map > 0])
    for code in (1, 2, 3):
        assert np.allclose(distance[code][grown == code], nearest[grown == code])
    assert grown.dtype == region_map.dtype


def test_either_removes_a_candidate_only_where_both_maps_say_outside_and_prefers_the_network_region():
    network = np.zeros((4, 1, 1), np.int64)
    atlas = np.zeros((4, 1, 1), np.int64)
    network[0], atlas[0] = 2, 1  # both inside, they disagree: the network's region (deep)
    network[1], atlas[1] = 0, 1  # the network's edge falls short of the atlas's: lobar, kept
    network[2], atlas[2] = 3, 0  # the atlas's falls short: the network's region
    table = pd.DataFrame({"candidate": range(4)})
    voxels = np.array([[i, 0, 0] for i in range(4)], float)
    out = add_regions(table, voxels, {"network": network, "atlas": atlas}, "either")
    assert out["region"].tolist() == ["deep", "lobar", "infratentorial", "outside"]
    assert out["kept"].tolist() == [True, True, True, False]
    assert out["region_network"].tolist() == ["deep", "outside", "infratentorial", "outside"]
    with pytest.raises(ValueError, match="no atlas region map"):
        add_regions(table, voxels, {"network": network}, "either")
