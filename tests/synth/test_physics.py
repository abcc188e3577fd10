"""The generator's physics against analytic expectations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from cmbflow.synth import physics

N, RADIUS, R = 96, 6.0, 14.0


def sphere(n=N, radius=RADIUS, step=1.0):
    grid = (np.indices((n, n, n)).astype(np.float32) - n / 2 + 0.5) * step
    return (np.sqrt((grid**2).sum(0)) <= radius).astype(np.float32)


@pytest.mark.parametrize("b0_axes", [(0.0, 0.0, 1.0), (0.0, np.sin(np.radians(30)), np.cos(np.radians(30)))])
def test_sphere_field_along_and_across_b0_is_two_to_minus_one(b0_axes):
    chi = sphere()
    field = physics.field_from_susceptibility(chi, (1.0, 1.0, 1.0), b0_axes)
    b = np.asarray(b0_axes) / np.linalg.norm(b0_axes)
    across = np.cross(b, [1.0, 0.0, 0.0])
    across /= np.linalg.norm(across)
    centre = np.full(3, N / 2 - 0.5)
    along_value, across_value = (
        ndimage.map_coordinates(field, (centre + R * d)[:, None], order=1)[0] for d in (b, across)
    )
    assert along_value / across_value == pytest.approx(-2.0, rel=0.10)
    radius_eff = (3 * chi.sum() / (4 * np.pi)) ** (1 / 3)  # volume of the voxelized sphere
    assert along_value == pytest.approx(physics.sphere_field_analytic(1.0, radius_eff, R, 1.0), rel=0.10)


def _phase_along_b0(chi_value):
    """Homodyne phase one voxel beyond a 3 mm sphere along B0, simulated at 0.25 mm."""
    step, factor = 0.25, 4
    chi = chi_value * sphere(n=128, radius=1.5, step=step)
    field = physics.field_from_susceptibility(chi, (step,) * 3, (0, 0, 1))
    signal = physics.average_blocks(physics.gre_signal(np.float32(1.0), np.float32(20.0), field, 20.0, 3.0), (factor,) * 3)
    phase = physics.homodyne_phase(signal, 0.25)
    centre = 128 // factor // 2
    return phase[centre, centre, centre + 3]


def test_paramagnetic_and_diamagnetic_foci_give_opposite_phase():
    para, dia = _phase_along_b0(+1.0), _phase_along_b0(-1.0)
    assert para < -0.1 and dia > 0.1  # right-handed convention: paramagnetic -> negative phase along B0
    assert para == pytest.approx(-dia, rel=0.2)


def _dark_width_mm(chi_value):
    """Width (mm) of the magnitude footprint below half the background, across B0 through a
    3 mm CMB (R2* 400/s) simulated on a 0.25 mm grid and averaged into 1 mm voxels."""
    step, factor, n = 0.25, 4, 128
    inside = sphere(n=n, radius=1.5, step=step)
    field = physics.field_from_susceptibility(chi_value * inside, (step,) * 3, (0, 0, 1))
    r2star = np.where(inside > 0, 400.0, 20.0).astype(np.float32)
    magnitude = np.abs(physics.average_blocks(physics.gre_signal(np.float32(1.0), r2star, field, 20.0, 3.0), (factor,) * 3))
    c = n // factor // 2
    profile = magnitude[:, c, c]
    background = profile[2]
    return float((profile < 0.5 * background).sum()) * step * factor


def test_strong_cmb_blooms_beyond_its_true_diameter():
    true_diameter = 3.0
    no_susceptibility = _dark_width_mm(0.0)
    blooming = _dark_width_mm(1.0)
    assert no_susceptibility <= true_diameter  # R2* alone: the footprint is the sphere
    assert blooming > true_diameter and blooming > no_susceptibility


def test_swi_mask_darkens_negative_phase_only():
    magnitude = np.ones(4, np.float32)
    phase = np.array([-np.pi / 2, 0.0, np.pi / 2, -np.pi], np.float32)
    np.testing.assert_allclose(physics.swi_from(magnitude, phase), [0.5**4, 1.0, 1.0, 0.0], atol=1e-6)
