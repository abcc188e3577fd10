import numpy as np
import pandas as pd
import pytest

from cmbflow.io.coords import grid_world_coordinates
from cmbflow.preprocessing.quality import dice, dipole_lobe_phase, lookup, marker_region_agreement, region_dice, summarize
from cmbflow.synth.physics import sphere_field_analytic

AFFINE = np.diag([1.0, 1.0, 2.0, 1.0])


def test_dice_and_region_dice():
    a = np.zeros((4, 4, 4), int)
    a[:2] = 1
    b = np.zeros_like(a)
    b[1:3] = 1
    assert dice(a, b) == pytest.approx(0.5)
    assert dice(np.zeros(3), np.zeros(3)) == 1.0
    scores = region_dice(a * 3, b * 3)
    assert scores == {"dice_lobar": 1.0, "dice_deep": 1.0, "dice_infratentorial": pytest.approx(0.5)}


def test_lookup_is_nearest_voxel_and_zero_outside():
    volume = np.arange(4 * 4 * 4).reshape(4, 4, 4)
    values = lookup(volume, AFFINE, np.array([[1.2, 2.0, 5.1], [100.0, 0.0, 0.0]]))
    assert list(values) == [volume[1, 2, 3], 0]


def test_marker_region_agreement_counts_matching_labels():
    regions = np.zeros((10, 10, 10), np.uint8)
    regions[:5] = 1
    regions[5:] = 3
    markers = pd.DataFrame({"x": [1.0, 7.0, 8.0], "y": [4.0] * 3, "z": [4.0] * 3,
                            "region": ["lobar", "infratentorial", "deep"]})
    assert marker_region_agreement(markers, regions, AFFINE) == pytest.approx(2 / 3)
    assert np.isnan(marker_region_agreement(markers.drop(columns="region"), regions, AFFINE))


def test_dipole_lobe_phase_has_the_sign_of_minus_chi():
    """Phase = -field (cmbflow's convention): a paramagnetic sphere gives negative phase in
    its B0 lobes, a diamagnetic one positive."""
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    affine[:3, 3] = -20
    world = grid_world_coordinates(affine, (41, 41, 41))
    r = np.linalg.norm(world, axis=-1)
    cos_theta = np.divide(world[..., 2], r, out=np.zeros_like(r), where=r > 0)
    field = np.where(r > 3, sphere_field_analytic(1.0, 3.0, np.maximum(r, 1e-6), cos_theta), 0.0)
    markers = pd.DataFrame({"x": [0.0], "y": [0.0], "z": [0.0], "radius_mm": [3.0]})
    assert dipole_lobe_phase(-field, affine, markers) < 0
    assert dipole_lobe_phase(field, affine, markers) > 0
    assert np.isnan(dipole_lobe_phase(field, affine, markers.iloc[:0]))


def test_summarize_flags_mutual_information_outliers_and_poor_brain_overlap():
    rows = pd.DataFrame({"subject": ["03", "01", "02", "04", "05"], "mattes_mi": [-0.55, -0.56, -0.54, -0.10, -0.55],
                         "brain_dice_vs_foreground": [0.97, 0.7, 0.98, 0.97, 0.96]})
    table = summarize(rows)
    assert list(table["subject"]) == ["01", "02", "03", "04", "05"]
    assert list(table["flag"]) == ["check", "ok", "ok", "check", "ok"]
