"""DICOM conversion on a real scanner's files (shared/data/dcm_qa_fmap, Siemens Prisma fit):
the result equals dcm2niix's reference conversion voxel for voxel and in affine, and the two
echoes, which share instance numbers, stay apart."""

from __future__ import annotations

import hashlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from cmbflow.config import dicom_subjects
from cmbflow.io.dicom import Series, _kind, convert_subject, select_series
from cmbflow.io.nifti import InputError

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "dcm_qa_fmap"
SIEMENS = DATA / "In" / "Siemens"
pytestmark = pytest.mark.skipif(not SIEMENS.is_dir(), reason=f"shared test data not found at {DATA}")


def _outputs(folder: Path) -> dict[str, str]:
    return {"magnitude": str(folder / "mag.nii.gz"), "phase": str(folder / "phase.nii.gz"),
            "magnitude_sidecar": str(folder / "mag.json"), "phase_sidecar": str(folder / "phase.json")}


def _same(converted: str, reference: Path) -> None:
    ours, theirs = nib.load(converted), nib.load(str(reference))
    np.testing.assert_array_equal(np.asanyarray(ours.dataobj), np.asanyarray(theirs.dataobj))
    np.testing.assert_allclose(ours.affine, theirs.affine, atol=1e-4)


@pytest.mark.parametrize("settings, echo", [({"echo": "first"}, 1), ({"echo": 2}, 2), ({"te_ms": 5.0}, 1), ({}, 2)])
def test_each_echo_converts_to_the_reference_voxel_for_voxel(tmp_path, settings, echo):
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in SIEMENS.rglob("*") if p.is_file()}
    provenance = convert_subject(SIEMENS, settings, _outputs(tmp_path))
    _same(str(tmp_path / "mag.nii.gz"), DATA / "Ref" / f"Si_2_gre_field_magph_e{echo}.nii")
    _same(str(tmp_path / "phase.nii.gz"), DATA / "Ref" / "Si_3_gre_field_magph_e2_ph.nii")
    assert f"echo {echo}" in provenance["magnitude"][0] and "phase echo 2" in provenance["phase"]
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in SIEMENS.rglob("*") if p.is_file()} == before


def test_echoes_combined_by_root_mean_square(tmp_path):
    convert_subject(SIEMENS, {"combine_echoes": "rms"}, _outputs(tmp_path))
    echoes = [np.asanyarray(nib.load(str(DATA / "Ref" / f"Si_2_gre_field_magph_e{e}.nii")).dataobj).astype(float) for e in (1, 2)]
    np.testing.assert_allclose(nib.load(str(tmp_path / "mag.nii.gz")).get_fdata(), np.sqrt((echoes[0] ** 2 + echoes[1] ** 2) / 2),
                               rtol=1e-5)


def test_no_matching_series_is_an_error_listing_what_was_found(tmp_path):
    with pytest.raises(InputError, match=r"no magnitude series matches .*Found: series 2 'gre_field_magph' magnitude echo 1"):
        convert_subject(SIEMENS, {"series_description": "*swi*"}, _outputs(tmp_path))


def test_two_candidate_series_are_an_error_asking_to_choose():
    def series(number, kind):
        return Series(Path(f"{number}.nii.gz"), {}, "swi", number, kind, 1, 20.0)

    with pytest.raises(InputError, match=r"2 magnitude series match .*series 5 'swi'.*series 7 'swi'.*dicom.series_number"):
        select_series([series(5, "magnitude"), series(7, "magnitude"), series(6, "phase")], {}, Path("P01"))
    magnitudes, phase = select_series([series(5, "magnitude"), series(7, "magnitude"), series(6, "phase")],
                                      {"series_number": [7, 6]}, Path("P01"))
    assert [s.number for s in magnitudes] == [7] and phase.number == 6


def test_a_b0_field_map_is_never_taken_for_the_phase_and_the_error_says_what_it_is():
    """GE and Philips export a B0 map in Hz (dcm2niix: ImageType FIELDMAPHZ, Units Hz; see
    neurolabusc/dcm_qa_fmap) beside or instead of the gradient-echo phase."""
    ge = {"ImageType": ["ORIGINAL", "PRIMARY", "OTHER", "REAL", "FIELDMAPHZ"], "Units": "Hz"}
    assert _kind(ge["ImageType"], ge["Units"]) == "field map" and _kind(["ORIGINAL", "PRIMARY", "P", "ND"]) == "phase"
    magnitude = Series(Path("2.nii.gz"), {}, "B0Map (GRE)", 2, "magnitude", 1, 4.94)
    field_map = Series(Path("3.nii.gz"), ge, "B0Map (GRE)", 3, _kind(ge["ImageType"], ge["Units"]), 1, 4.94)
    with pytest.raises(InputError, match=r"no phase series matches .*field map echo 1.*A B0 field map \(Hz\) is not the "
                                         r"phase .*phase: false"):
        select_series([magnitude, field_map], {}, Path("P01"))


def test_subject_folders_are_the_subject_labels_and_odd_names_are_reported(tmp_path):
    (tmp_path / "P01").mkdir()
    (tmp_path / "P02").mkdir()
    assert list(dicom_subjects("site", {"dicom_dir": str(tmp_path), "dicom": {"subjects": "*"}})) == ["P01", "P02"]
    (tmp_path / "P_03").mkdir()
    with pytest.raises(InputError, match=r"P_03.*not BIDS labels"):
        dicom_subjects("site", {"dicom_dir": str(tmp_path), "dicom": {"subjects": "*"}})


def test_loose_files_beside_the_subject_folders_are_reported(tmp_path, caplog):
    (tmp_path / "P01").mkdir()
    (tmp_path / "stray.dcm").write_bytes(b"")
    assert list(dicom_subjects("site", {"dicom_dir": str(tmp_path), "dicom": {"subjects": "*"}})) == ["P01"]
    assert "stray.dcm" in caplog.text and "not converted" in caplog.text


def test_a_dataset_without_phase_converts_the_magnitude_alone(tmp_path):
    outputs = {kind: path for kind, path in _outputs(tmp_path).items() if not kind.startswith("phase")}
    provenance = convert_subject(SIEMENS, {"echo": "first"}, outputs)
    _same(outputs["magnitude"], DATA / "Ref" / "Si_2_gre_field_magph_e1.nii")
    assert provenance["phase"] == "none" and sorted(p.name for p in tmp_path.iterdir()) == ["mag.json", "mag.nii.gz"]


def test_a_dicom_datasets_annotations_come_from_annotations_dir(tmp_path):
    """CMB masks and markers drawn on the converted images (NIfTI) sit in annotations_dir under
    the usual patterns; the DAG's input lists and validation both find them."""
    from cmbflow.config import subject_inputs

    (tmp_path / "dicom/P01").mkdir(parents=True)
    (tmp_path / "dicom/P02").mkdir()
    markers = tmp_path / "labels/derivatives/cmb_labels/sub-P01/anat/sub-P01_desc-cmb_markers.tsv"
    markers.parent.mkdir(parents=True)
    markers.write_text("x\ty\tz\n")
    dataset = {"dicom_dir": str(tmp_path / "dicom"), "role": "external", "annotations_dir": str(tmp_path / "labels"),
               "dicom": {"subjects": "*"}}
    inputs = subject_inputs("site", dataset, {})
    assert inputs["P01"]["markers"] == str(markers) and inputs["P02"]["markers"] == "" and inputs["P01"]["mask"] == ""
    assert inputs["P01"]["magnitude"].startswith("results/dicom/site/sub-P01/")


def test_the_air_tells_a_real_magnitude_from_its_phase():
    """The statistic that refuses swapped magnitude and phase, on the real scanner's images: a
    magnitude's air is dark, a phase's holds random phase across the whole range."""
    from cmbflow.io.phase import DARK_AIR_SPREAD, PHASE_LIKE_AIR_SPREAD, air_spread

    for echo in (1, 2):
        magnitude = np.asanyarray(nib.load(str(DATA / "Ref" / f"Si_2_gre_field_magph_e{echo}.nii")).dataobj)
        assert air_spread(magnitude) < DARK_AIR_SPREAD / 10
    phase = np.asanyarray(nib.load(str(DATA / "Ref" / "Si_3_gre_field_magph_e2_ph.nii")).dataobj)
    assert air_spread(phase) > PHASE_LIKE_AIR_SPREAD + 0.1
