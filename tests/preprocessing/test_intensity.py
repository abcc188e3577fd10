import numpy as np
import pytest

from cmbflow.preprocessing.antsimage import to_ants
from cmbflow.preprocessing.intensity import n4_correct, normalize_phase, robust_scale


def test_robust_scale_maps_brain_percentiles_to_0_and_1_whatever_the_gain():
    rng = np.random.default_rng(0)
    swi = rng.normal(1000, 100, (20, 20, 20)).astype(np.float32)
    swi[10, 10, 10] = 5.0  # a dark CMB voxel must not move the scale
    brain = np.zeros(swi.shape, np.uint8)
    brain[2:-2, 2:-2, 2:-2] = 1
    scaled, (low, high) = robust_scale(swi, brain)
    inside = scaled[brain > 0]
    assert np.percentile(inside, 1) == pytest.approx(0.0, abs=1e-5)
    assert np.percentile(inside, 99) == pytest.approx(1.0, abs=1e-5)
    assert scaled[10, 10, 10] == -1.0  # clipped, still the darkest
    rescaled, _ = robust_scale(swi * 7.5, brain)  # another scanner gain: same result
    np.testing.assert_allclose(rescaled, scaled, atol=1e-5)


def test_robust_scale_refuses_an_empty_brain_or_a_constant_image():
    with pytest.raises(ValueError, match="brain mask is empty"):
        robust_scale(np.ones((4, 4, 4)), np.zeros((4, 4, 4)))
    with pytest.raises(ValueError, match="constant"):
        robust_scale(np.ones((4, 4, 4)), np.ones((4, 4, 4)))


def test_phase_sign_flips_the_opposite_handedness_onto_one_convention():
    radians = np.array([-np.pi, -1.0, 0.0, 2.0, np.pi], np.float32)
    np.testing.assert_allclose(normalize_phase(radians, 1), radians / np.pi, atol=1e-7)
    np.testing.assert_allclose(normalize_phase(-radians, -1), normalize_phase(radians, 1), atol=1e-7)
    with pytest.raises(ValueError, match="phase_sign"):
        normalize_phase(radians, 0)


def test_n4_removes_a_smooth_receive_bias():
    shape = (48, 48, 32)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    bias = 1.0 + 0.4 * grid[0] + 0.2 * grid[1] ** 2
    rng = np.random.default_rng(1)
    tissue = np.where(rng.random(shape) < 0.5, 1.0, 0.8) * (np.linalg.norm(grid, axis=0) < 0.9)
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    image = to_ants((tissue * bias).astype(np.float32), affine)
    mask = to_ants((tissue > 0).astype(np.float32), affine)
    corrected = n4_correct(image, mask, shrink_factor=2, spline_distance_mm=60).numpy()
    inside = tissue > 0
    def cv(values):  # spread of the bright class: the bias widens it, N4 must narrow it
        bright = values[inside & (tissue == 1.0)]
        return bright.std() / bright.mean()
    assert cv(corrected) < 0.5 * cv(tissue * bias)


def test_n4_shrinks_fine_scans_further_and_keeps_the_factor_for_coarse_ones():
    from cmbflow.preprocessing.intensity import n4_shrink

    assert n4_shrink((1.0, 1.0, 2.0)) == 4
    assert n4_shrink((2.0, 2.0, 3.0)) == 4
    assert n4_shrink((0.7, 0.7, 1.1)) == 6
    assert n4_shrink((0.5, 0.5, 0.5), shrink_factor=2, shrink_mm=3.0) == 6


def test_foreground_mask_of_a_fine_scan_is_found_on_a_coarse_copy_and_matches():
    import ants

    from cmbflow.preprocessing.intensity import foreground_mask

    shape, voxel = (160, 180, 60), 0.6
    grid = np.stack(np.meshgrid(*[(np.arange(n) - n / 2) * v for n, v in zip(shape, (voxel, voxel, 2.0))], indexing="ij"))
    head = ((grid / np.array([40.0, 48.0, 45.0])[:, None, None, None]) ** 2).sum(0) < 1
    image = np.where(head, 100.0, 2.0) + np.random.default_rng(0).normal(0, 3, shape)
    affine = np.diag([voxel, voxel, 2.0, 1.0])
    fine = to_ants(image, affine)
    mask = foreground_mask(fine)
    assert mask.shape == fine.shape and mask.spacing == fine.spacing  # on the scan's own grid
    direct = ants.get_mask(fine).numpy() > 0
    found = mask.numpy() > 0
    assert 2 * (found & direct).sum() / (found.sum() + direct.sum()) > 0.97
    assert 2 * (found & head).sum() / (found.sum() + head.sum()) > 0.97
