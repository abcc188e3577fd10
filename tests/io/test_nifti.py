"""Images in other formats read into the same voxel array and world mm RAS+ affine."""

import ants
import nibabel as nib
import numpy as np
import pytest

from cmbflow.io.coords import voxel_to_world
import gzip
import logging

from cmbflow.io.nifti import (InputError, enclosed_nonfinite, image_geometry, load_volume, read_nifti_array, save_volume,
                               zero_nonfinite)
from cmbflow.preprocessing.antsimage import to_ants

# Oblique about two axes (an asymmetric direction matrix, so a transposed one shows), LAS-stored,
# anisotropic: a header bug shows up as a moved voxel.
ROTATION = (np.array([[np.cos(0.3), -np.sin(0.3), 0], [np.sin(0.3), np.cos(0.3), 0], [0, 0, 1]])
            @ np.array([[1, 0, 0], [0, np.cos(0.5), -np.sin(0.5)], [0, np.sin(0.5), np.cos(0.5)]]))
AFFINE = np.eye(4)
AFFINE[:3, :3] = ROTATION @ np.diag([-0.9, 1.1, 2.5])
AFFINE[:3, 3] = [40.0, -60.0, -30.0]


@pytest.mark.parametrize("extension", [".nrrd", ".nhdr", ".mha", ".mhd"])
def test_itk_formats_read_like_the_same_nifti(tmp_path, extension):
    data = np.random.default_rng(0).uniform(0, 100, (9, 8, 7)).astype(np.float32)
    save_volume(tmp_path / "reference.nii.gz", data, AFFINE)
    ants.image_write(to_ants(data, AFFINE), str(tmp_path / f"image{extension}"))
    array, affine = load_volume(tmp_path / f"image{extension}")
    reference, reference_affine = load_volume(tmp_path / "reference.nii.gz")
    np.testing.assert_array_equal(array, reference)
    np.testing.assert_allclose(affine, reference_affine, atol=1e-4)
    corner = voxel_to_world(affine, [[8, 7, 6]])[0]
    np.testing.assert_allclose(corner, AFFINE[:3, :3] @ [8, 7, 6] + AFFINE[:3, 3], atol=1e-3)  # world mm RAS+
    shape, header_affine = image_geometry(tmp_path / f"image{extension}")  # what detection maps positions back with
    assert shape == (9, 8, 7)
    np.testing.assert_allclose(header_affine, reference_affine, atol=1e-4)


@pytest.mark.parametrize("name, compress", [("plain_named.nii.gz", False), ("gzipped_named.nii", True)])
def test_a_nifti_whose_name_lies_about_gzip_is_read_with_a_warning(tmp_path, caplog, name, compress):
    data = np.random.default_rng(1).uniform(0, 100, (9, 8, 7)).astype(np.float32)
    save_volume(tmp_path / "reference.nii", data, AFFINE)
    content = (tmp_path / "reference.nii").read_bytes()
    (tmp_path / name).write_bytes(gzip.compress(content) if compress else content)
    with caplog.at_level(logging.WARNING):
        array, affine = load_volume(tmp_path / name)
    np.testing.assert_array_equal(array, data)
    np.testing.assert_allclose(affine, AFFINE, atol=1e-5)
    assert image_geometry(tmp_path / name)[0] == (9, 8, 7)
    assert f"{name}: the file is {'' if compress else 'not '}gzip-compressed, against its name" in caplog.text


def test_a_corrupt_nrrd_is_an_input_error_naming_it(tmp_path):
    path = tmp_path / "broken.nrrd"
    path.write_text("NRRD0004\ntype: float\ndimension: 3\nsizes: 4 4\n\n")
    with pytest.raises(InputError, match="broken.nrrd: cannot be read as NRRD"):
        load_volume(path)


def test_nonfinite_voxels_read_as_zero_and_a_finite_image_is_not_copied():
    data = np.array([[[1.0, np.nan], [np.inf, -np.inf]]], np.float32)
    assert zero_nonfinite(data).tolist() == [[[1.0, 0.0], [0.0, 0.0]]] and zero_nonfinite(data).dtype == np.float32
    finite = np.ones((2, 2, 2), np.float32)
    assert zero_nonfinite(finite) is finite


def test_nan_enclosed_by_the_image_is_told_from_a_background_reaching_its_border():
    data = np.full((20, 20, 12), 100.0, np.float32)
    data[:3], data[:, :, -2:] = np.nan, np.inf  # a background on two faces, joined
    data[3:8, 0:2, 5] = np.nan  # a notch from the border: background too
    data[9:11, 9:11, 5:7] = np.nan  # a hole inside
    data[15, 15, 3] = np.inf
    enclosed = enclosed_nonfinite(data)
    assert enclosed.sum() == 9 and enclosed[9:11, 9:11, 5:7].all() and enclosed[15, 15, 3]
    assert enclosed_nonfinite(np.full((4, 4, 4), np.nan, np.float32)).all()  # nothing finite: no background to be part of


def test_read_nifti_array_gives_nibabel_s_values_for_compressed_scaled_and_plain_files(tmp_path):
    values = np.random.default_rng(3).normal(0, 100, (20, 18, 6)).astype(np.float32)
    scaled = nib.Nifti1Image(values, np.eye(4))
    scaled.set_data_dtype(np.int16)  # stored as integers with a slope and intercept, as scanners write
    for name, image in (("plain.nii.gz", nib.Nifti1Image(values, np.eye(4))), ("plain.nii", nib.Nifti1Image(values, np.eye(4))),
                        ("scaled.nii.gz", scaled), ("nifti2.nii.gz", nib.Nifti2Image(values, np.eye(4)))):
        path = str(tmp_path / name)
        nib.save(image, path)
        expected = np.asarray(nib.load(path).dataobj, np.float32)
        np.testing.assert_array_equal(read_nifti_array(path, np.float32), expected)
        assert read_nifti_array(path).dtype == np.asarray(nib.load(path).dataobj).dtype
    assert not np.array_equal(read_nifti_array(str(tmp_path / "scaled.nii.gz")), values)  # rounded by its int16 storage
