import numpy as np

from cmbflow.dark_spots import close_dark_spots, dark_spot_structures, dark_spot_voxels


def test_closing_fills_a_cmb_sized_dark_spot_but_keeps_the_background_outside_the_head():
    swi = np.full((40, 40, 20), -0.5, np.float32)  # background
    swi[5:35, 5:35, 3:17] = 0.5  # tissue, 30 x 30 x 28 mm
    swi[18:22, 18:22, 9:11] = -0.5  # a 4 mm dark spot (a CMB) inside
    closed = close_dark_spots(swi, spacing=(1.0, 1.0, 2.0), size_mm=10.0)
    assert np.allclose(closed[18:22, 18:22, 9:11], 0.5)
    assert np.array_equal(closed[:5], swi[:5]) and np.array_equal(closed[5:35, 5:35, 3:17] > 0, np.ones((30, 30, 14), bool))
    assert close_dark_spots(swi, (1.0, 1.0, 2.0), 0.0) is swi


def test_the_darkest_narrow_spots_are_found_and_wide_dark_areas_are_not():
    swi = np.full((40, 40, 20), 0.5, np.float32)  # tissue everywhere
    swi[18:21, 10:30, 9:11] = 0.0  # a 3 mm vein, 20 mm long: narrow, dark
    swi[2:5, 2:5, 2:4] = 0.3  # a faint spot
    swi[:, :, 15:] = 0.0  # a wide dark slab (10 mm thick): not a spot
    within = np.ones(swi.shape, bool)
    voxels = dark_spot_voxels(swi, within, (1.0, 1.0, 2.0), size_mm=7.0, share=120 / swi.size)
    assert len(voxels) == 120
    assert {tuple(v) for v in voxels} == {(i, j, k) for i in range(18, 21) for j in range(10, 30) for k in range(9, 11)}
    assert len(dark_spot_voxels(swi, np.zeros(swi.shape, bool), (1.0, 1.0, 2.0), 7.0, 0.01)) == 0


def test_dark_spots_group_into_their_connected_structures():
    voxels = np.array([[1, 1, 1], [5, 5, 5], [2, 2, 2], [6, 5, 5], [9, 0, 0]])  # (1,1,1)-(2,2,2) touch diagonally
    structures = dark_spot_structures(voxels, (10, 10, 10))
    assert sorted(sorted(map(tuple, s)) for s in structures) == [[(1, 1, 1), (2, 2, 2)], [(5, 5, 5), (6, 5, 5)], [(9, 0, 0)]]
    assert dark_spot_structures(np.zeros((0, 3), int), (4, 4, 4)) == []
