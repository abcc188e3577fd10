"""Randomized physics: seeded draws within their configured ranges, through the real generator."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cmbflow.synth.cohort import acquisition_record, draw_subject
from cmbflow.synth.randomize import SCALED_CLASSES, Randomization
from cmbflow.sites import SiteParams

# one worker builds the MARS atlas and the generator (session fixtures) and runs every test that reads them
pytestmark = pytest.mark.xdist_group("simulator")

SITE = SiteParams.from_config("train", {"randomize": True, "voxel_mm": [1.0, 1.0, 2.0], "sim_voxel_mm": 2.0})
# Coarse voxels keep the simulation below a few seconds.
COARSE = Randomization.defaults(**{"inplane_mm": [2.0, 2.4], "slice_mm": [3.0, 4.0], "medullary_veins": [2, 6],
                                    "pial_veins": [2, 6], "cmb_diameter_mm": [4.0, 8.0]})


def test_draws_are_seeded_per_subject_and_differ_between_subjects():
    ranges = Randomization.defaults()
    a, appearance_a, _ = draw_subject(SITE, "001", 3, ranges)
    b, appearance_b, _ = draw_subject(SITE, "001", 3, ranges)
    c, _, _ = draw_subject(SITE, "002", 3, ranges)
    assert a == b and np.array_equal(appearance_a.tissue_factors, appearance_b.tissue_factors)
    assert (a.te_ms, a.voxel_mm, a.snr) != (c.te_ms, c.voxel_mm, c.snr)


def test_every_draw_lies_within_the_configured_ranges():
    ranges = Randomization.defaults(**{"b0_tesla": [1.5, 7.0], "te_ms": [10.0, 30.0], "snr": [20.0, 40.0],
                                        "orientations": ["LPS"], "ventricle_expansion": [0.1, 0.2]})
    draws = [draw_subject(SITE, f"{n:03d}", 0, ranges)[:2] for n in range(60)]
    assert all(ranges.contains(site, appearance) for site, appearance in draws)
    assert {site.b0_tesla for site, _ in draws} == {1.5, 7.0}
    assert all(site.orientation == "LPS" and 20.0 <= site.snr <= 40.0 for site, _ in draws)
    assert all(site.te_ms * site.b0_tesla <= ranges.te_field_max + 1e-9 for site, _ in draws)  # 7 T: short TEs
    factors = np.array([appearance.tissue_factors[list(SCALED_CLASSES)] for _, appearance in draws])
    assert factors[..., 1].min() >= 0.6 and factors[..., 1].max() <= 1.6
    assert factors[..., 1].std() > 0.1  # tissues do not keep one grey-level relation
    # the ranges are really spanned, not collapsed to a default
    te = [site.te_ms for site, _ in draws if site.b0_tesla == 1.5]
    assert min(te) < 15 and max(te) > 25


def test_a_draw_outside_the_ranges_is_recognised():
    site, appearance, _ = draw_subject(SITE, "001", 0, Randomization.defaults())
    assert not Randomization.defaults(**{"snr": [100.0, 200.0]}).contains(site, appearance)


def test_unknown_randomization_key_is_rejected():
    with pytest.raises(ValueError, match="synth.randomization: unknown setting\\(s\\) tesla"):
        Randomization.defaults(tesla=[3.0])


@pytest.fixture(scope="module")
def randomized_subjects(simulator):
    out = []
    for subject in ("001", "002"):
        acquisition, appearance, rng = draw_subject(SITE, subject, 5, COARSE)
        out.append((acquisition, appearance, simulator.simulate(acquisition, rng, appearance=appearance)))
    return out


def test_a_randomized_subject_is_simulated_on_its_own_drawn_grid(randomized_subjects):
    for acquisition, appearance, subject in randomized_subjects:
        spacing = np.linalg.norm(subject.affine[:3, :3], axis=0)
        np.testing.assert_allclose(spacing, acquisition.voxel_mm, rtol=1e-6)
        assert 2.0 <= spacing[0] <= 2.4 and 3.0 <= spacing[2] <= 4.0
        brain = subject.swi[subject.brain_mask > 0]
        for label in subject.markers["label"]:
            assert subject.swi[subject.cmb_labels == label].mean() < np.median(brain)  # CMBs stay dark at any contrast
        record = json.loads(json.dumps(acquisition_record(acquisition, appearance)))
        assert record["MagneticFieldStrength"] == acquisition.b0_tesla and record["Randomized"] is True
        assert record["cmbflow"]["swi_power"] == appearance.swi_power
    (a, _, first), (b, _, second) = randomized_subjects
    assert a.voxel_mm != b.voxel_mm and first.swi.shape != second.swi.shape
