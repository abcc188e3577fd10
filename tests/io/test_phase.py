import numpy as np
import pytest

from cmbflow.io.nifti import InputError
from cmbflow.io.phase import (detect_phase_units, magnitude_rank_correlation, phase_coherence, phase_kind, phase_to_radians,
                              scanner_code_range)
from cmbflow.phase_filter import highpass_phase


@pytest.mark.parametrize(
    "codes, expected_range",
    [(np.arange(0, 4096), (0, 4095)), (np.arange(-4096, 4096), (-4096, 4095)), (np.arange(-2048, 2048), (-2048, 2047))],
)
def test_scanner_codes_are_rescaled_to_radians(codes, expected_range):
    data = codes.astype(np.float32).reshape(-1, 1, 1)
    assert detect_phase_units(data) == "scanner"
    assert scanner_code_range(data) == expected_range
    radians, note = phase_to_radians(data)
    assert radians.min() == pytest.approx(-np.pi)
    assert radians.max() == pytest.approx(np.pi - 2 * np.pi / len(codes), abs=1e-5)
    assert "scanner units" in note and "detected" in note


def test_radians_are_kept_and_wrapped():
    data = np.array([-3.0, 0.0, 1.0, 2 * np.pi - 0.5], np.float32)
    radians, note = phase_to_radians(data)
    assert "radians (detected)" in note
    np.testing.assert_allclose(radians, [-3.0, 0.0, 1.0, -0.5], atol=1e-6)


def test_config_can_force_units_and_range():
    data = np.array([0.0, 1.0, 2.0, 3.0], np.float32)  # would be detected as radians
    radians, note = phase_to_radians(data, units="scanner", code_range=(0, 3))
    np.testing.assert_allclose(radians, [-np.pi, -np.pi / 2, 0.0, np.pi / 2], atol=1e-6)
    assert "set in config" in note


@pytest.mark.parametrize("lo, hi", [(-180.0, 179.9), (0.0, 359.9)])
def test_degrees_are_recognised_and_converted(lo, hi):
    data = np.linspace(lo, hi, 1000, dtype=np.float32) + 0.25
    assert detect_phase_units(data) == "degrees"
    radians, note = phase_to_radians(data)
    assert "degrees (detected)" in note
    np.testing.assert_allclose(np.cos(radians), np.cos(np.deg2rad(data)), atol=1e-5)


def test_milliradians_are_recognised_as_philips_and_ge_write_them_and_a_field_map_is_not():
    truth = np.random.default_rng(0).uniform(-np.pi, np.pi, 20_000).astype(np.float32)  # wrapped phase, noise included
    truth[:2] = -np.pi, np.pi - 1e-4
    philips = (np.rint((truth + np.pi) / (2 * np.pi) * 4095) * (2 * np.pi * 1000 / 4095) - 1000 * np.pi)  # RWV slope/intercept
    ge = np.rint(truth * 1000)  # integer milliradians
    for data in (philips.astype(np.float32), ge.astype(np.float32)):
        assert detect_phase_units(data) == "milliradians"
        radians, note = phase_to_radians(data)
        assert "milliradians (detected)" in note
        np.testing.assert_allclose(np.exp(1j * radians), np.exp(1j * truth), atol=2e-3)
    field_map = np.random.default_rng(1).normal(0, 300, 20_000).astype(np.float32)  # Hz: its tails do not end at +-1000 pi
    assert detect_phase_units(field_map) == "ambiguous"
    siemens = np.rint((truth + np.pi) / (2 * np.pi) * 8191) - 4096  # 13-bit codes, extremes at -4096 and 4095
    assert detect_phase_units(siemens.astype(np.float32)) == "scanner"


def test_unwrapped_radians_are_refused_unless_named_then_wrapped():
    data = np.linspace(-25.3, 31.7, 1000, dtype=np.float32)  # unwrapped: far beyond one turn, not integers
    with pytest.raises(InputError, match=r"not integer scanner codes.*phase_units: unwrapped"):
        phase_to_radians(data, source="p.nii.gz")
    radians, note = phase_to_radians(data, units="unwrapped")
    assert "unwrapped" in note and radians.min() >= -np.pi and radians.max() < np.pi
    np.testing.assert_allclose(np.exp(1j * radians), np.exp(1j * data), atol=1e-4)


@pytest.mark.parametrize("units, data, fragment", [
    ("radians", np.arange(0, 4096, dtype=np.float32), "phase_units is radians, but the values span 0..4095"),
    ("degrees", np.arange(-4096, 4096, dtype=np.float32), "phase_units is degrees"),
    ("scanner", np.linspace(-3, 3, 50, dtype=np.float32), "phase_units is scanner, but the values .* are not integer codes"),
])
def test_forced_units_that_contradict_the_data_are_refused(units, data, fragment):
    with pytest.raises(InputError, match=r"^p.nii.gz: " + fragment):
        phase_to_radians(data, units=units, source="p.nii.gz")


def test_a_code_range_that_does_not_hold_the_values_is_refused():
    data = np.arange(-4096, 4096, dtype=np.float32)
    with pytest.raises(InputError, match=r"phase_code_range \[0, 4095\] does not hold the values \(-4096..4095\)"):
        phase_to_radians(data, code_range=(0, 4095), source="p.nii.gz")
    with pytest.raises(InputError, match="applies to scanner codes only"):
        phase_to_radians(data / 4096 * 3, units="radians", code_range=(-4096, 4095))


def _head(shape=(96, 96, 8)):
    """A round head (magnitude 1 inside), voxel grid of 1 mm, with world positions in mm."""
    grid = np.stack(np.meshgrid(*[np.arange(n) - n / 2 for n in shape], indexing="ij"), axis=-1).astype(np.float32)
    head = (grid[..., 0] ** 2 + grid[..., 1] ** 2) < 40**2
    return grid, head.astype(np.float32)


def test_raw_phase_is_told_from_filtered_and_filtering_keeps_a_small_source():
    grid, magnitude = _head()
    rng = np.random.default_rng(0)
    background = 0.003 * (grid[..., 0] ** 2 - 0.5 * grid[..., 1] ** 2) + 0.1 * grid[..., 1]  # wraps across the head
    source = -1.5 * np.exp(-((grid[..., 0] - 5) ** 2 + (grid[..., 1] + 3) ** 2) / 2.0)  # a CMB-sized phase dip
    filtered = (source + rng.normal(0, 0.1, grid.shape[:3])).astype(np.float32)
    raw = np.angle(np.exp(1j * (filtered + background))).astype(np.float32)
    assert phase_kind(filtered, magnitude, (1.0, 1.0, 2.0)) == "filtered"
    assert phase_kind(raw, magnitude, (1.0, 1.0, 2.0)) == "raw"
    result = highpass_phase(magnitude, raw, (1.0, 1.0, 2.0), width_mm=10.0)
    inside = magnitude > 0
    assert phase_kind(result, magnitude, (1.0, 1.0, 2.0)) == "filtered"
    assert result[53, 45, 4] < -1.0  # the source keeps its phase dip
    assert np.median(np.abs(result[inside])) < 0.25  # the background field is gone


def test_a_phase_is_told_from_a_magnitude_and_from_noise():
    """A wrapped steep ramp is smooth and unrelated to the magnitude; a magnitude given as the
    phase follows it rank for rank; noise has no smoothness."""
    rng = np.random.default_rng(0)
    grid = np.indices((40, 40, 8)).astype(np.float32)
    magnitude = 100 + 50 * np.sin(grid[0] / 6) * np.cos(grid[1] / 5) + rng.normal(0, 2, grid.shape[1:])
    ramp = np.angle(np.exp(1j * (2.5 * grid[0] + 1.5 * grid[1] + rng.normal(0, 0.1, grid.shape[1:])))).astype(np.float32)
    assert phase_coherence(ramp, magnitude) > 0.9
    assert abs(magnitude_rank_correlation(ramp, magnitude)) < 0.2
    codes = np.rint(magnitude * 20)  # the magnitude as 12-bit phase codes
    assert magnitude_rank_correlation(codes, magnitude) > 0.99
    noise = rng.uniform(-np.pi, np.pi, magnitude.shape).astype(np.float32)
    assert phase_coherence(noise, magnitude) < 0.1
