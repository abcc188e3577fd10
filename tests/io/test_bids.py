"""Subject discovery: nothing is dropped in silence."""

import pytest

from cmbflow.io.bids import discover_subjects
from cmbflow.io.nifti import InputError


def _touch(root, relative):
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def _subject(root, label, ext=".nii.gz", phase=True):
    _touch(root, f"sub-{label}/anat/sub-{label}_part-mag_swi{ext}")
    if phase:
        _touch(root, f"sub-{label}/anat/sub-{label}_part-phase_swi{ext}")


def test_a_nii_among_nii_gz_files_is_found_with_its_phase(tmp_path):
    root = tmp_path / "bids [site A]"  # glob metacharacters in the folder name are taken literally
    _subject(root, "01")
    _subject(root, "02", ext=".nii")
    found = {files.key: files for files in discover_subjects("site", {"bids_dir": str(root)})}
    assert sorted(found) == ["01", "02"]
    assert found["02"].magnitude.name == "sub-02_part-mag_swi.nii" and found["02"].phase.name == "sub-02_part-phase_swi.nii"


@pytest.mark.parametrize("label", ["01_a", "01 a", "01é"])
def test_a_subject_label_that_is_not_bids_is_an_error_naming_the_file(tmp_path, label):
    _subject(tmp_path, "01")
    _subject(tmp_path, label)
    with pytest.raises(InputError, match=r"not with BIDS labels.*sub-" + label + r"_part-mag_swi.nii.gz.*Rename them"):
        discover_subjects("site", {"bids_dir": str(tmp_path)})


def test_a_phase_without_its_magnitude_is_an_error_naming_both(tmp_path):
    _subject(tmp_path, "01")
    _touch(tmp_path, "sub-02/anat/sub-02_part-phase_swi.nii.gz")
    with pytest.raises(InputError, match=r"phase file\(s\) without a magnitude image: .*sub-02_part-phase_swi.nii.gz.*expected at "
                                         r".*sub-02/anat/sub-02_part-mag_swi.nii.gz"):
        discover_subjects("site", {"bids_dir": str(tmp_path)})


def test_two_magnitudes_of_one_subject_are_duplicates(tmp_path):
    _subject(tmp_path, "01")
    _touch(tmp_path, "sub-01/anat/sub-01_part-mag_swi.nii")
    with pytest.raises(InputError, match="duplicate subject ids"):
        discover_subjects("site", {"bids_dir": str(tmp_path)})


def test_an_annotation_without_its_magnitude_is_an_error_naming_it(tmp_path):
    _subject(tmp_path, "01")
    _touch(tmp_path, "derivatives/cmb_labels/sub-03/anat/sub-03_desc-cmb_markers.tsv")
    with pytest.raises(InputError, match=r"markers file\(s\) without a magnitude image: .*sub-03_desc-cmb_markers.tsv"):
        discover_subjects("site", {"bids_dir": str(tmp_path)})


def test_a_subject_folder_without_a_magnitude_is_skipped_with_a_warning_naming_it_and_its_files(tmp_path, caplog):
    _subject(tmp_path, "01")
    _subject(tmp_path, "02")
    _touch(tmp_path, "sub-03/anat/sub-03_T1w.nii.gz")  # another modality only
    (tmp_path / "sub-04" / "anat").mkdir(parents=True)  # an empty export
    with caplog.at_level("WARNING", logger="cmbflow.io.bids"):
        found = discover_subjects("site", {"bids_dir": str(tmp_path)})
    assert [files.key for files in found] == ["01", "02"]
    skipped = [record.getMessage() for record in caplog.records if "is skipped" in record.getMessage()]
    assert len(skipped) == 2, caplog.text
    assert "sub-03 is skipped" in skipped[0] and "sub-03/ holds: anat/sub-03_T1w.nii.gz" in skipped[0]
    assert "sub-04 is skipped" in skipped[1] and "sub-04/ is empty" in skipped[1]


def test_a_second_file_for_one_annotation_is_named_in_a_warning(tmp_path, caplog):
    """A markers table and a Slicer point list of the same name: the table is read, the other said."""
    _subject(tmp_path, "01")
    for extension in (".tsv", ".mrk.json"):
        _touch(tmp_path, f"derivatives/cmb_labels/sub-01/anat/sub-01_desc-cmb_markers{extension}")
    with caplog.at_level("WARNING"):
        (found,) = discover_subjects("site", {"bids_dir": str(tmp_path)})
    assert found.markers.name == "sub-01_desc-cmb_markers.tsv"
    assert "sub-01_desc-cmb_markers.mrk.json is not" in caplog.text
