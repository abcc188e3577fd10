import numpy as np
import pytest

from cmbflow.io.phase import detect_phase_units, phase_to_radians, scanner_code_range


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
    assert "forced by config" in note
