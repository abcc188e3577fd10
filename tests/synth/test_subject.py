"""A small subject through the real generator: ground truth agrees with the images."""

from __future__ import annotations

import numpy as np
import pytest

from cmbflow.atlas import REGION_NAMES
from cmbflow.io.coords import world_to_voxel
from cmbflow.synth.cohort import store_phase, subject_rng
from cmbflow.sites import SiteParams

# one worker builds the MARS atlas and the generator (session fixtures) and runs every test that reads them
pytestmark = pytest.mark.xdist_group("simulator")

TINY = dict(voxel_mm=(2.0, 2.0, 3.0), sim_voxel_mm=2.0, cmb_count_max=6, cmb_free_fraction=0.0, medullary_veins=10,
            pial_veins=10, cmb_diameter_mm=(4.0, 8.0), calcifications_max=2)


@pytest.fixture(scope="module")
def subject(simulator):
    return simulator.simulate(SiteParams.from_config("tiny", dict(TINY, orientation="LAS", oblique_deg=10.0)),
                              subject_rng(7, "tiny", "001"))


def test_markers_match_instance_mask_and_regions(subject):
    assert len(subject.markers) >= 1
    assert sorted(subject.markers["label"]) == sorted(set(np.unique(subject.cmb_labels)) - {0})
    ijk = np.rint(world_to_voxel(subject.affine, subject.markers[["x", "y", "z"]].to_numpy())).astype(int)
    for (i, j, k), label, region in zip(ijk, subject.markers["label"], subject.markers["region"]):
        assert subject.cmb_labels[i, j, k] == label  # the marker lies on its own instance
        assert REGION_NAMES[int(subject.regions[i, j, k])] == region
        assert region in ("lobar", "deep", "infratentorial")
    assert set(subject.markers["rating"]) <= {"definite", "possible"}  # rated on the simulated SWI (cmbflow.synth.rating)


def test_cmbs_are_dark_on_swi(subject):
    brain = subject.swi[subject.brain_mask > 0]
    for label in subject.markers["label"]:
        assert subject.swi[subject.cmb_labels == label].mean() < 0.5 * np.median(brain)


def test_same_seed_same_subject_other_seed_differs(simulator):
    site = SiteParams.from_config("tiny", TINY)
    a = simulator.simulate(site, subject_rng(3, "tiny", "001"))
    b = simulator.simulate(site, subject_rng(3, "tiny", "001"))
    c = simulator.simulate(site, subject_rng(3, "tiny", "002"))
    np.testing.assert_array_equal(a.swi, b.swi)
    assert not np.array_equal(a.swi, c.swi)


def test_site_orientation_and_phase_storage():
    site = SiteParams.from_config("x", dict(voxel_mm=[1, 1, 3], orientation="LAS", oblique_deg=12.0))
    affine = site.affine()
    assert affine[0, 0] < 0  # first axis runs to the left
    assert np.allclose(np.linalg.norm(affine[:3, :3], axis=0), [1, 1, 3])
    np.testing.assert_allclose(affine[:3, :3] @ ((np.array(site.shape) - 1) / 2) + affine[:3, 3], 0, atol=1e-9)
    codes = store_phase(np.array([-np.pi, 0.0, np.pi - 1e-6]), "scanner")
    assert codes.dtype == np.int16 and list(codes) == [-4096, 0, 4095]


def test_unknown_site_key_is_rejected():
    with pytest.raises(ValueError, match="unknown keys \\['voxels'\\]"):
        SiteParams.from_config("x", {"voxels": [1, 1, 1]})


def test_a_twin_site_draws_the_subjects_of_its_original():
    from cmbflow.synth.cohort import draw_subject
    from cmbflow.sites import SiteParams

    original, twin, other = (SiteParams.from_config(name, values) for name, values in
                             (("ext", {}), ("extraw", {"draws_of": "ext", "phase_kind": "raw"}), ("extraw", {})))
    draws = [draw_subject(site, "001", 7)[2].uniform(size=4) for site in (original, twin, other)]
    assert np.array_equal(draws[0], draws[1]) and not np.array_equal(draws[0], draws[2])


def test_air_cavities_are_enclosed_below_the_brain_and_the_dark_rim_of_the_head_is_not_air():
    from cmbflow.synth.tissue import head_classes
    # A 1 mm phantom: a brain ball in a head ball; scalp bright; a dark rim at the head's
    # edge all round (as the template's lower head), a dark skull band, and a dark cavity
    # deep in the head below the brain, clear of it (a sinus).
    grid = np.indices((140, 140, 140)).astype(float)
    radius = np.sqrt(((grid - np.array([70, 70, 70])[:, None, None, None]) ** 2).sum(0))
    brain = radius < 35
    t1 = np.where(radius < 68, 1.0, 0.0)
    t1[(radius >= 35) & (radius < 39)] = 0.05               # skull band (4 mm)
    t1[(radius >= 62) & (radius < 68)] = 0.15               # dark rim at the head's edge (foreground, not soft)
    cavity = np.sqrt(((grid - np.array([70, 70, 22])[:, None, None, None]) ** 2).sum(0)) < 7
    t1[cavity] = 0.02
    soft, bone, air = head_classes(t1, brain, wm_level=1.0)
    assert air[70, 70, 22] and air.sum() > 0.6 * cavity.sum() and not (air & ~cavity).any()
    assert bone[70, 70, 33] and bone[70, 107, 70]             # the skull band is bone, below the brain too
    assert not air[(radius >= 62) & (radius < 68)].any()   # the rim is not air, however thick and low
    assert not (soft & air).any() and not (bone & air).any()


def test_stored_tissue_maps_are_the_built_ones_and_refuse_another_contrast(simulator, mars_atlas_file, tmp_path):
    """The workflow builds the template's tissue maps once (rule synthesize_tissue_maps) and
    every subject job reads them: a subject must not change by it (the default cohort's files
    were identical, checked on 2026-12-03)."""
    from cmbflow.synth.cohort import make_simulator
    from cmbflow.synth.tissue import TISSUE_FIELDS, save_tissue_maps

    path = tmp_path / "tissue.npz"
    save_tissue_maps(simulator.tissue, "t1", path)
    stored = make_simulator(mars_atlas_file, tissue_path=path)
    for name in TISSUE_FIELDS:  # every map the simulation reads, bit for bit and of the same type
        built, read = getattr(simulator.tissue, name), getattr(stored.tissue, name)
        assert read.dtype == built.dtype, name
        np.testing.assert_array_equal(read, built, err_msg=name)
    np.testing.assert_array_equal(stored.codes, simulator.codes)
    with pytest.raises(ValueError, match="t1 image, not t2"):
        make_simulator(mars_atlas_file, contrast="t2", tissue_path=path)
