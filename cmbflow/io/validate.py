"""The input contract, enforced before any heavy work: every problem names its file and fix."""

from __future__ import annotations

import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from cmbflow.io.annotations import instance_labels, read_markers
from cmbflow.io.bids import SubjectFiles, discover_subjects
from cmbflow.io.coords import voxel_sizes, world_to_voxel
from cmbflow.io.nifti import InputError, load_volume
from cmbflow.io.phase import phase_to_radians

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = ["subject", "session", "key", "magnitude", "phase", "mask", "markers", "n_cmb",
                    "phase_units", "shape", "voxel_mm", "orientation"]


def _finite(path: Path, data: np.ndarray) -> str | None:
    bad = int((~np.isfinite(data)).sum())
    if bad:
        return f"{path}: {bad} voxel(s) are NaN or Inf. Replace them (e.g. with 0) before running cmbflow."
    return None


def _same_grid(reference: Path, ref_shape, ref_affine, path: Path, shape, affine, tolerance_mm: float, what: str) -> str | None:
    if tuple(shape) != tuple(ref_shape):
        return f"{path}: {what} has shape {tuple(shape)} but {reference} has {tuple(ref_shape)}. They must share one voxel grid; resample {path.name} onto the magnitude image."
    worst = float(np.abs(affine - ref_affine).max())
    if worst > tolerance_mm:
        return (f"{path}: {what} affine differs from {reference} by up to {worst:.4g} mm (tolerance {tolerance_mm} mm, "
                "config validation.affine_tolerance_mm). They must share one voxel grid; resample it onto the magnitude image.")
    return None


def check_subject(files: SubjectFiles, dataset: dict, tolerance_mm: float, annotations_required: bool) -> tuple[dict, list[str]]:
    """Check one subject's files; return ``(manifest row, problems)``."""
    problems: list[str] = []
    row = {"subject": files.subject, "session": files.session or "", "key": files.key, "magnitude": str(files.magnitude),
           "phase": str(files.phase), "mask": str(files.mask or ""), "markers": str(files.markers or ""), "n_cmb": 0,
           "phase_units": "", "shape": "", "voxel_mm": "", "orientation": ""}
    try:
        magnitude, affine = load_volume(files.magnitude)
    except InputError as error:
        return row, [str(error)]
    row.update(shape="x".join(map(str, magnitude.shape)), voxel_mm="x".join(f"{v:.3g}" for v in voxel_sizes(affine)),
               orientation="".join(nib.aff2axcodes(affine)))
    problems.append(_finite(files.magnitude, magnitude))

    if not files.phase.exists():
        problems.append(f"{files.magnitude}: no phase image; expected {files.phase}. cmbflow needs SWI magnitude and phase: "
                        f"add the phase file or set datasets.<name>.patterns.phase to where it is.")
    else:
        try:
            phase, phase_affine = load_volume(files.phase)
            problems.append(_same_grid(files.magnitude, magnitude.shape, affine, files.phase, phase.shape, phase_affine, tolerance_mm, "phase"))
            problems.append(_finite(files.phase, phase))
            if np.all(np.isfinite(phase)):
                _, row["phase_units"] = phase_to_radians(phase, dataset.get("phase_units", "auto"),
                                                         dataset.get("phase_code_range"), source=str(files.phase))
        except InputError as error:
            problems.append(str(error))

    n_cmb = 0
    if files.mask is not None:
        try:
            mask, mask_affine = load_volume(files.mask)
            grid = _same_grid(files.magnitude, magnitude.shape, affine, files.mask, mask.shape, mask_affine, tolerance_mm, "CMB mask")
            problems.append(grid)
            problems.append(_finite(files.mask, mask))
            if grid is None and np.all(np.isfinite(mask)):
                if np.any(mask < 0) or not np.allclose(mask, np.rint(mask)):
                    problems.append(f"{files.mask}: CMB mask must hold non-negative integers (instance labels or a 0/1 mask).")
                else:
                    n_cmb = len(np.unique(instance_labels(mask))) - 1
        except InputError as error:
            problems.append(str(error))
    if files.markers is not None:
        try:
            markers = read_markers(files.markers)
            ijk = world_to_voxel(affine, markers[["x", "y", "z"]].to_numpy(float))
            outside = np.any((ijk < -0.5) | (ijk > np.array(magnitude.shape) - 0.5), axis=1)
            for index in np.flatnonzero(outside):
                x, y, z = markers.loc[index, ["x", "y", "z"]]
                problems.append(f"{files.markers}: marker on row {index + 1} at ({x:g}, {y:g}, {z:g}) mm lies outside the image "
                                f"{files.magnitude}. Markers must be world mm in the image's RAS+ frame (convert LPS by negating x and y).")
            if files.mask is None:
                n_cmb = len(markers)
        except InputError as error:
            problems.append(str(error))
    if annotations_required and files.mask is None and files.markers is None:
        problems.append(f"{files.magnitude}: no CMB annotation (mask or markers) found; an internal dataset needs them for training "
                        "and evaluation. Add derivatives/cmb_labels/... files (a subject with zero CMBs gets an empty mask or a "
                        "markers file with only the header), or set the dataset's role to external.")
    row["n_cmb"] = n_cmb
    return row, [p for p in problems if p]


def validate_dataset(name: str, dataset: dict, tolerance_mm: float = 0.01, subjects: list[SubjectFiles] | None = None) -> pd.DataFrame:
    """Validate every subject of a dataset; return its manifest or raise :class:`InputError`
    listing every problem found (one line each)."""
    subjects = subjects if subjects is not None else discover_subjects(name, dataset)
    rows, problems = [], []
    for files in subjects:
        row, found = check_subject(files, dataset, tolerance_mm, annotations_required=dataset.get("role") == "internal")
        rows.append(row)
        problems.extend(found)
    if problems:
        raise InputError(f"dataset '{name}': {len(problems)} input problem(s):\n  - " + "\n  - ".join(problems))
    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    log.info("dataset '%s': %d subjects valid, %d CMBs annotated", name, len(manifest), int(manifest["n_cmb"].sum()))
    return manifest
