"""Image reading and writing: NIfTI through nibabel, NRRD / NHDR / MHA / MHD through ITK
(antspyx), whose LPS geometry crosses to RAS+ in :mod:`cmbflow.io.coords`. Arrays are indexed
by voxel; affines map voxel -> world mm RAS+. Everything cmbflow writes is NIfTI."""

from __future__ import annotations

import gzip
import logging
import os
from pathlib import Path

import nibabel as nib
import numpy as np


log = logging.getLogger(__name__)
GZIP_MAGIC = b"\x1f\x8b"


class InputError(ValueError):
    """A problem with a user's input file; the message names the file and the fix."""


ITK_EXTENSIONS = (".nrrd", ".nhdr", ".mha", ".mhd")


def _load_itk(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(array, affine)`` of a NRRD / MetaImage file read by ITK (antspyx)."""
    import ants  # ITK's readers; imported only for these formats

    from cmbflow.io.coords import affine_from_ants_geometry

    try:
        image = ants.image_read(str(path))
    except Exception as error:  # ITK raises RuntimeError/ValueError for corrupt files
        raise InputError(f"{path}: cannot be read as {path.suffix[1:].upper()} ({error}). Re-export it, or convert it "
                         "to NIfTI.") from error
    if image.components > 1 or image.dimension != 3:
        raise InputError(f"{path}: image has {image.dimension} dimensions and {image.components} component(s) per voxel; "
                         "expected one 3-D scalar volume (complex or multi-echo data: one file per part and echo).")
    affine = affine_from_ants_geometry(image.origin, image.spacing, image.direction)
    if abs(np.linalg.det(affine[:3, :3])) < 1e-6:
        raise InputError(f"{path}: header geometry is singular (spacing or directions are zero). Fix the header.")
    return image.numpy(), affine


def load_volume(path: str | os.PathLike, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Read a 3-D volume ``(array, affine)``; trailing singleton axes (x,y,z,1) are dropped.

    Raises :class:`InputError` for an empty, unreadable, complex or non-3-D file, and for a
    header whose affine is singular or that holds no orientation (world mm would be a guess:
    left and right could swap).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found. Check the dataset's bids_dir and file patterns.")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: file is empty (0 bytes). Re-export or re-copy it.")
    if path.name.lower().endswith(ITK_EXTENSIONS):
        data, affine = _load_itk(path)
        return data.astype(dtype, copy=False), affine
    try:
        image = _load_nifti(path)
        data = np.asanyarray(image.dataobj)
    except Exception as error:  # nibabel raises many types for corrupt files
        raise InputError(f"{path}: cannot be read as NIfTI ({error}). Re-export it as .nii or .nii.gz (NRRD and "
                         "MetaImage files need their extension: .nrrd, .nhdr, .mha, .mhd).") from error
    if np.iscomplexobj(data):
        raise InputError(f"{path}: image holds complex values. Give magnitude and phase as two real images "
                         "(numpy: abs and angle; or the scanner's magnitude and phase series).")
    _check_header(path, image)
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise InputError(f"{path}: image has shape {data.shape}, expected a 3-D volume. Split 4-D series (e.g. multi-echo) into one 3-D file per image.")
    return data.astype(dtype, copy=False), image.affine


def enclosed_nonfinite(data: np.ndarray) -> np.ndarray:
    """NaN / Inf voxels of ``data`` that do not belong to a background: every such voxel unless
    its connected region of NaN / Inf (faces touching) reaches the image's border, as the
    background SPM and some exports write as NaN does. Holes inside the head are enclosed."""
    from scipy import ndimage

    bad = ~np.isfinite(data)
    if not bad.any() or bad.all():
        return bad
    return bad & ndimage.binary_fill_holes(~bad)  # the holes of the finite part: NaN regions cut off from the border


def zero_nonfinite(data: np.ndarray) -> np.ndarray:
    """``data`` with NaN and Inf read as 0 (a copy only where there are any): the background
    that some tools write as NaN. Validation refuses those enclosed by the image (:func:`enclosed_nonfinite`)."""
    finite = np.isfinite(data)
    return data if finite.all() else np.where(finite, data, 0).astype(data.dtype, copy=False)


def image_geometry(path: str | os.PathLike) -> tuple[tuple[int, int, int], np.ndarray]:
    """``(shape, affine)`` of a volume from its header alone (voxel index -> world mm RAS+), for
    every format :func:`load_volume` reads: NIfTI (also with a name that disagrees on gzip),
    NRRD / NHDR / MHA / MHD (read whole by ITK: antspyx's header-only ``image_header_info``
    returns the direction matrix transposed, which moved every position of an oblique scan)."""
    path = Path(path)
    if path.name.lower().endswith(ITK_EXTENSIONS):
        data, affine = _load_itk(path)
        return tuple(int(n) for n in data.shape[:3]), affine
    image = _load_nifti(path)
    return tuple(int(n) for n in image.shape[:3]), image.affine


def read_nifti_array(path: str | os.PathLike, dtype=None) -> np.ndarray:
    """The voxel array of a NIfTI file that cmbflow wrote (the model-ready volumes: no checks),
    as ``dtype`` when given. A gzipped one is decompressed in one zlib call, which runs outside
    the GIL, so files read on threads side by side decompress in parallel; nibabel's streamed
    reader holds the GIL between its small chunks (two full-size channels on 2 threads: 0.80 s
    streamed, 0.52 s in one call each)."""
    image = nib.load(str(path))  # the header alone
    if str(path).endswith(".gz"):
        image = type(image).from_bytes(gzip.decompress(Path(path).read_bytes()))
    return np.asarray(image.dataobj, dtype)


def _load_nifti(path: Path):
    """``nib.load``, or, for a file whose name and content disagree on gzip (a plain NIfTI named
    ``.nii.gz`` by hand, or the reverse), the content as it is, with a warning: nibabel goes by
    the name alone and fails on both."""
    with open(path, "rb") as handle:
        compressed = handle.read(2) == GZIP_MAGIC
    if compressed == path.name.lower().endswith(".gz"):
        return nib.load(str(path))
    log.warning("%s: the file is %s, against its name; read as it is. Rename it to %s.", path,
                "gzip-compressed" if compressed else "not gzip-compressed", path.name + ".gz" if compressed else path.name[:-3])
    content = gzip.decompress(path.read_bytes()) if compressed else path.read_bytes()
    try:
        return nib.Nifti1Image.from_bytes(content)
    except Exception:  # a NIfTI-2 header (540 bytes) is not a NIfTI-1 one
        return nib.Nifti2Image.from_bytes(content)


def _check_header(path: Path, image) -> None:
    header = image.header
    if isinstance(header, nib.Nifti1Header) and int(header["sform_code"]) == 0 and int(header["qform_code"]) == 0:
        raise InputError(f"{path}: header holds no orientation (sform_code and qform_code are 0), so where left and right "
                         "lie is unknown. Re-convert from DICOM (dcm2niix writes it), or set the orientation with fslorient "
                         "or nibabel's set_sform once you know it.")
    if isinstance(header, nib.Nifti1Header):  # NIfTI-2 headers derive from it
        spatial = header.get_xyzt_units()[0]
        if spatial in ("meter", "micron"):  # nibabel's affine is in the header's units; ours are mm
            raise InputError(f"{path}: header says its spatial units are {spatial}s; cmbflow reads millimetres (so do "
                             "dcm2niix and every MRI tool). If the affine is in mm, re-save the image with units mm "
                             "(nibabel: header.set_xyzt_units('mm')); otherwise re-convert it from DICOM.")
    linear = np.asarray(image.affine, float)[:3, :3]
    if not np.all(np.isfinite(linear)) or abs(np.linalg.det(linear)) < 1e-6:
        raise InputError(f"{path}: header affine is singular or not finite ({np.round(linear, 4).tolist()}): voxel sizes "
                         "or directions are missing. Re-convert from DICOM, or fix the header's pixdim and sform.")


def save_volume(path: str | os.PathLike, data: np.ndarray, affine: np.ndarray, dtype=None) -> None:
    """Write ``data`` with ``affine`` (voxel -> world mm RAS+) as NIfTI, sform and qform set."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.asarray(data, dtype=dtype) if dtype is not None else np.asarray(data)
    image = nib.Nifti1Image(array, affine)
    image.set_sform(affine, code=1)
    image.set_qform(affine, code=1)
    nib.save(image, str(path))
