"""Every check of the input contract fires, with a message naming the file and the fix."""

from __future__ import annotations

import gzip
import shutil

import nibabel as nib
import numpy as np
import pytest

from cmbflow.io.bids import discover_subjects
from cmbflow.io.nifti import InputError, load_volume, save_volume
from cmbflow.io.validate import validate_dataset
from tests.conftest import AFFINE, SHAPE, write_subject


def run(root, role="internal", **extra):
    return validate_dataset("demo", {"bids_dir": str(root), "role": role, **extra})


def expect_problem(root, *fragments, **kwargs):
    with pytest.raises(InputError) as caught:
        run(root, **kwargs)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_valid_dataset_gives_manifest_with_cmb_counts(bids):
    root, _ = bids
    manifest = run(root)
    assert list(manifest["key"]) == ["01", "02"]
    assert list(manifest["n_cmb"]) == [2, 0]  # a subject with zero CMBs is valid
    assert set(manifest["orientation"]) == {"LAS"}
    assert manifest["phase_units"].str.contains("radians").all()


def test_sessions_are_discovered_as_separate_keys(tmp_path):
    root = tmp_path / "bids"
    write_subject(root, "01", session="a")
    write_subject(root, "01", session="b")
    assert [s.key for s in discover_subjects("demo", {"bids_dir": str(root)})] == ["01_ses-a", "01_ses-b"]


def test_custom_patterns(tmp_path):
    root = tmp_path / "flat"
    root.mkdir()
    rng = np.random.default_rng(7)
    save_volume(root / "P7_mag.nii", rng.uniform(100, 200, SHAPE).astype(np.float32), AFFINE)
    save_volume(root / "P7_pha.nii", rng.normal(0, 0.4, SHAPE).astype(np.float32), AFFINE)
    manifest = run(root, role="external", patterns={"magnitude": "{subject}_mag.nii", "phase": "{subject}_pha.nii"})
    assert list(manifest["key"]) == ["P7"]


def test_missing_phase(bids):
    root, files = bids
    files["01"]["phase"].unlink()
    expect_problem(root, str(files["01"]["magnitude"]), "no phase image", str(files["01"]["phase"]), "patterns.phase")


def test_shape_mismatch(bids):
    root, files = bids
    save_volume(files["01"]["phase"], np.zeros((12, 14, 9), np.float32), AFFINE)
    expect_problem(root, str(files["01"]["phase"]), "shape (12, 14, 9)", "resample")


def test_affine_mismatch_beyond_tolerance_only(bids):
    root, files = bids
    phase = load_volume(files["01"]["phase"])[0]
    shifted = AFFINE.copy()
    shifted[0, 3] += 0.005
    save_volume(files["01"]["phase"], phase, shifted)
    run(root)  # 0.005 mm is within the default 0.01 mm tolerance
    shifted[0, 3] += 0.5
    save_volume(files["01"]["phase"], phase, shifted)
    expect_problem(root, str(files["01"]["phase"]), "affine differs", "affine_tolerance_mm")


def test_not_3d(bids):
    root, files = bids
    save_volume(files["02"]["magnitude"], np.ones((*SHAPE, 3), np.float32), AFFINE)
    expect_problem(root, str(files["02"]["magnitude"]), "expected a 3-D volume")


def test_trailing_singleton_axis_is_accepted(bids):
    root, files = bids
    magnitude = load_volume(files["02"]["magnitude"])[0]
    save_volume(files["02"]["magnitude"], magnitude[..., None], AFFINE)
    run(root)


def test_nan_and_inf_enclosed_are_refused_and_a_background_reaching_the_border_read_as_zero(bids, caplog):
    root, files = bids
    data = np.random.default_rng(2).uniform(100, 200, SHAPE).astype(np.float32)  # head up to the image's edge
    data[0, 0, 0] = np.inf  # on the border: background
    save_volume(files["02"]["magnitude"], data, AFFINE)
    run(root)
    assert "1 voxel(s) of background, reaching the image's border, are NaN or Inf; they are read as 0" in caplog.text
    data[6, 7, 5], data[2, 3, 4] = np.nan, np.inf
    save_volume(files["02"]["magnitude"], data, AFFINE)
    expect_problem(root, str(files["02"]["magnitude"]), "2 voxel(s) are NaN or Inf, enclosed by the image (1 more, a background")


def test_empty_file(bids):
    root, files = bids
    files["01"]["phase"].write_bytes(b"")
    expect_problem(root, str(files["01"]["phase"]), "file is empty")


def test_unreadable_file(bids):
    root, files = bids
    with gzip.open(files["01"]["magnitude"], "wb") as handle:
        handle.write(b"this is not a nifti header")
    expect_problem(root, str(files["01"]["magnitude"]), "cannot be read as NIfTI")


def test_mask_on_other_grid(bids):
    root, files = bids
    save_volume(files["01"]["mask"], np.zeros((6, 7, 5), np.int16), AFFINE @ np.diag([2, 2, 2, 1]))
    expect_problem(root, str(files["01"]["mask"]), "CMB mask has shape")


def test_mask_must_be_integer(bids):
    root, files = bids
    save_volume(files["01"]["mask"], np.full(SHAPE, 0.5, np.float32), AFFINE)
    expect_problem(root, str(files["01"]["mask"]), "non-negative integers")


def test_binary_mask_is_split_into_components(tmp_path):
    root = tmp_path / "bids"
    files = write_subject(root, "01", n_cmb=0, markers=False)
    mask = np.zeros(SHAPE, np.uint8)
    mask[2:4, 2:4, 2:4] = 1
    mask[8:10, 8:10, 6:8] = 1
    save_volume(files["mask"], mask, AFFINE)
    assert list(run(root)["n_cmb"]) == [2]


def test_marker_outside_image(bids):
    root, files = bids
    files["01"]["markers"].write_text("x\ty\tz\n0\t0\t0\n500\t0\t0\n")
    message = expect_problem(root, str(files["01"]["markers"]), "row 2 at (500, 0, 0) mm lies outside", "RAS+")
    assert "row 1" not in message


def test_markers_need_xyz_columns(bids):
    root, files = bids
    files["01"]["markers"].write_text("i\tj\tk\n1\t2\t3\n")
    expect_problem(root, str(files["01"]["markers"]), "lacks column(s) ['x', 'y', 'z']")


def test_duplicate_subject_ids(bids):
    root, files = bids
    other = files["01"]["magnitude"].with_name("sub-01_acq-b_part-mag_swi.nii.gz")
    other.write_bytes(files["01"]["magnitude"].read_bytes())
    with pytest.raises(InputError, match="duplicate subject ids.*sub-01"):
        run(root, patterns={"magnitude": "sub-{subject}/anat/sub-{subject}*_part-mag_swi.nii.gz"})


def test_dataset_without_subjects(tmp_path):
    (tmp_path / "empty").mkdir()
    expect_problem(tmp_path / "empty", "no subjects found", "patterns.magnitude")


def test_missing_bids_dir(tmp_path):
    expect_problem(tmp_path / "nowhere", "does not exist", "bids_dir")


def test_internal_dataset_needs_annotations_external_does_not(tmp_path):
    root = tmp_path / "bids"
    files = write_subject(root, "01", markers=False, mask=False)
    assert len(run(root, role="external")) == 1
    expect_problem(root, str(files["magnitude"]), "no CMB annotation", role="internal")


def test_all_problems_reported_together(bids):
    root, files = bids
    files["01"]["phase"].unlink()
    files["02"]["phase"].write_bytes(b"")
    message = expect_problem(root, "2 input problem(s)")
    assert str(files["01"]["magnitude"]) in message and str(files["02"]["phase"]) in message


def test_inputs_are_not_modified(bids):
    root, files = bids
    before = {p: p.read_bytes() for f in files.values() for p in f.values()}
    run(root)
    assert all(p.read_bytes() == content for p, content in before.items())
    assert nib.load(str(files["01"]["magnitude"])).shape == SHAPE


def test_a_dataset_without_phase_is_valid_without_phase_files_and_says_so(bids, caplog):
    root, files = bids
    files["01"]["phase"].unlink()  # the other subject's phase stays: it is not read, and that is said
    manifest = run(root, phase=False)
    assert list(manifest["key"]) == ["01", "02"]
    assert manifest["phase"].tolist() == ["", ""] and manifest["phase_kind"].tolist() == ["none", "none"]
    assert "phase: false, so its 1 phase file(s) are not read" in caplog.text


def test_annotations_kept_apart_from_the_images_are_found_under_annotations_dir(bids, tmp_path):
    root, files = bids
    labels = tmp_path / "labels"
    shutil.move(str(root / "derivatives"), str(labels / "derivatives"))
    assert list(run(root, role="external")["n_cmb"]) == [0, 0]  # not beside the images any more
    manifest = run(root, annotations_dir=str(labels))
    assert list(manifest["n_cmb"]) == [2, 0] and manifest["mask"].str.startswith(str(labels)).all()
    expect_problem(root, "annotations_dir", str(tmp_path / "nope"), annotations_dir=str(tmp_path / "nope"))


def _swi_subject(root, subject, phase_sign=1, magnitude="swi", raw=False):
    """A head-sized phantom: tissue contrast (+-30 %), smooth local phase (veins, CMBs: +-1 rad)
    and the SWI made from them."""
    from scipy import ndimage

    from cmbflow.phase_filter import swi_from

    rng = np.random.default_rng(5)
    shape = (64, 64, 8)
    grid = np.indices(shape)
    head = ((grid[0] - 31.5) / 28) ** 2 + ((grid[1] - 31.5) / 28) ** 2 < 1
    field = ndimage.gaussian_filter(rng.normal(0, 1, shape), (2, 2, 1))
    phase = (np.clip(0.8 * field / field.std(), -3, 3) * head).astype(np.float32)
    tissue = ndimage.gaussian_filter(rng.normal(0, 1, shape), (3, 3, 1))
    gre = (head * (100 + 30 * tissue / tissue.std() + rng.normal(0, 3, shape))).clip(0).astype(np.float32)
    anat = root / f"sub-{subject}" / "anat"
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    save_volume(anat / f"sub-{subject}_part-mag_swi.nii.gz", swi_from(gre, phase) if magnitude == "swi" else gre, affine)
    if raw:  # as many scanners export it: plus a smooth background field that wraps
        background = 0.12 * grid[0] + 0.002 * (grid[1] - 32.0) ** 2
        phase = np.angle(np.exp(1j * (phase + background))).astype(np.float32)
    save_volume(anat / f"sub-{subject}_part-phase_swi.nii.gz", phase_sign * phase, affine)


def test_the_phase_handedness_is_checked_against_the_swi(tmp_path, caplog):
    """An SWI is dark where its phase is negative: read with the other handedness it is dark
    where the phase is positive, and every CMB would look diamagnetic."""
    _swi_subject(tmp_path / "right", "01")
    run(tmp_path / "right", role="external")
    _swi_subject(tmp_path / "other", "01", phase_sign=-1)
    expect_problem(tmp_path / "other", "sub-01_part-phase_swi.nii.gz", "other handedness", "phase_sign: -1", role="external")
    run(tmp_path / "other", role="external", phase_sign=-1)
    _swi_subject(tmp_path / "raw", "01", phase_sign=-1, raw=True)  # raw phase: high-passed before the check
    assert run(tmp_path / "raw", role="external", phase_sign=-1)["phase_kind"][0] == "raw"
    expect_problem(tmp_path / "raw", "other handedness", "phase_sign: -1", role="external")
    _swi_subject(tmp_path / "gre", "01", magnitude="gre")  # a plain GRE magnitude: accepted, with a hint
    run(tmp_path / "gre", role="external")
    assert "magnitude: gre" in caplog.text
    caplog.clear()
    run(tmp_path / "gre", role="external", magnitude="gre")
    run(tmp_path / "right", role="external", magnitude="gre")
    assert "magnitude: swi" in caplog.text
