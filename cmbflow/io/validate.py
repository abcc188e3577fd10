"""The input contract, enforced before any heavy work: every problem names its file and fix."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from cmbflow.io.annotations import instance_labels, read_markers
from cmbflow.io.bids import TRAINING_ROLES, SubjectFiles, discover_subjects
from cmbflow.io.coords import voxel_sizes, world_to_voxel
from cmbflow.io.nifti import InputError, enclosed_nonfinite, load_volume, zero_nonfinite
from cmbflow.io.phase import (DARK_AIR_SPREAD, FLIPPED_DARKENING_MIN, MAGNITUDE_LIKE_RHO, MIN_COHERENCE, PHASE_LIKE_AIR_SPREAD, SWI_DARKENING_MAX,
                              air_spread, field_map_marks, magnitude_rank_correlation, phase_coherence, phase_kind,
                              phase_to_radians, swi_darkening)
from cmbflow.settings import dataset_entry

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = ["subject", "session", "key", "magnitude", "phase", "mask", "markers", "n_cmb",
                    "phase_units", "phase_kind", "phase_filter", "shape", "voxel_mm", "orientation"]
MIN_VOXELS, MIN_EXTENT_MM = 4, 10.0  # a 3-D detector needs a volume, not a slice or two
MARKER_TO_MASK_MM = 3.0  # a marker further than this from every mask voxel misses its mask


def _field_map_sidecar(path: Path) -> str | None:
    """A problem when the JSON sidecar beside the phase image ``path`` says it is a B0 field map."""
    sidecar = path.with_name(path.name.removesuffix(".gz").removesuffix(".nii") + ".json")
    try:
        content = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
    except (OSError, ValueError):
        return None  # an unreadable sidecar says nothing; the image itself is checked
    if not isinstance(content, dict):
        return None
    said = field_map_marks(content.get("ImageType", []), content.get("Units", ""))
    if said:
        return (f"{path}: its sidecar {sidecar.name} says it is a B0 field map ({said}), not a phase image. Give the "
                "gradient-echo phase of the SWI (part-phase), or set datasets.<name>.phase: false to run on SWI alone.")
    return None


def _finite(path: Path, data: np.ndarray, background_ok: bool = True) -> str | None:
    """NaN / Inf voxels: refused where enclosed (a hole in the image, hiding tissue); a background
    region of them that reaches the image's border (as SPM and some exports write it) is read as 0
    (:func:`cmbflow.io.nifti.zero_nonfinite`), with a warning. ``background_ok`` False (a CMB
    mask, the user's own drawing): refused anywhere."""
    n_bad = int((~np.isfinite(data)).sum())
    if not n_bad:
        return None
    inside = int(enclosed_nonfinite(data).sum()) if background_ok else n_bad
    if inside:
        where = "" if inside == n_bad else f", enclosed by the image ({n_bad - inside} more, a background reaching its border, would be read as 0)"
        return f"{path}: {inside} voxel(s) are NaN or Inf{where}. Replace them (e.g. with 0) before running cmbflow."
    log.warning("%s: %d voxel(s) of background, reaching the image's border, are NaN or Inf; they are read as 0 (the file is not "
                "changed)", path, n_bad)
    return None


def _magnitude_problem(path: Path, magnitude: np.ndarray, affine: np.ndarray) -> str | None:
    """An image that cannot be an SWI / GRE magnitude: too few slices, empty, or negative."""
    extent = np.array(magnitude.shape) * voxel_sizes(affine)
    if min(magnitude.shape) < MIN_VOXELS or extent.min() < MIN_EXTENT_MM:
        return (f"{path}: image of {magnitude.shape} voxels covers {'x'.join(f'{e:.0f}' for e in extent)} mm; a 3-D "
                f"detector needs a volume of at least {MIN_VOXELS} voxels and {MIN_EXTENT_MM:g} mm along every axis. "
                "Give the whole 3-D acquisition, not single slices.")
    finite = magnitude[np.isfinite(magnitude)]
    if finite.size == 0 or float(finite.max()) <= 0:
        return f"{path}: magnitude image is all zero (or holds no positive value). Re-export the magnitude series."
    if float(finite.min()) == float(finite.max()):
        return f"{path}: magnitude image holds one value only ({float(finite.max()):g}), not an image. Re-export the magnitude series."
    negative = float(np.mean(finite < 0))
    if negative > 0.001:
        return (f"{path}: {100 * negative:.1f} % of the magnitude voxels are negative; a magnitude is never negative. "
                "Is this a phase or a real/imaginary part? Give the magnitude (e.g. abs of the complex image).")
    return None


def _swapped(files: SubjectFiles, magnitude: np.ndarray, phase: np.ndarray) -> str | None:
    """Magnitude and phase swapped: the "magnitude" has a phase's air (values across its whole
    range) and the "phase" a magnitude's (dark); see :data:`cmbflow.io.phase.PHASE_LIKE_AIR_SPREAD`.
    Unsigned phase codes pass the negative-magnitude check and every phase check, so only this tells."""
    if float(phase.min()) == float(phase.max()):
        return None  # a one-value phase: refused as such by _phase_problem
    magnitude_air, phase_air = air_spread(magnitude), air_spread(phase)
    if magnitude_air < PHASE_LIKE_AIR_SPREAD or phase_air >= DARK_AIR_SPREAD:
        return None
    return (f"{files.magnitude}: magnitude and phase are swapped: the air around the head holds values across this image's "
            f"whole range (corner spread {magnitude_air:.2f}), as a phase's does, while the air of {files.phase} is dark "
            f"({phase_air:.2f}), as a magnitude's is. Swap the dataset's patterns.magnitude and patterns.phase (dcm2niix "
            "names the phase series *_ph).")


def _phase_problem(path: Path, magnitude_path: Path, phase: np.ndarray, radians: np.ndarray, magnitude: np.ndarray) -> str | None:
    """A phase image that is no phase (see :data:`cmbflow.io.phase.MAGNITUDE_LIKE_RHO`): one value
    only, a magnitude-like image (the same series twice, the SWI or mIP), or noise."""
    fix = "Point the dataset's patterns.phase at the phase series (dcm2niix names it *_ph), or set phase: false to run on SWI alone."
    if float(phase.min()) == float(phase.max()):
        return f"{path}: the phase image holds one value only ({float(phase.min()):g}): an empty or placeholder export. {fix}"
    rho = magnitude_rank_correlation(phase, magnitude)
    if abs(rho) >= MAGNITUDE_LIKE_RHO:
        return (f"{path}: the phase image follows the magnitude {magnitude_path.name} voxel for voxel (rank correlation "
                f"{rho:.2f} inside the head; a phase stays within +-0.4): it is a magnitude, SWI or mIP image, or the same "
                f"series twice. {fix}")
    coherence = phase_coherence(radians, magnitude)
    if coherence < MIN_COHERENCE:
        return (f"{path}: the phase image holds no spatially smooth signal inside the head (coherence {coherence:.2f}; a "
                f"phase, wrapped or not, reads 0.9 or more): it is noise or not of this acquisition. {fix}")
    return None


def _handedness_problem(files: SubjectFiles, radians: np.ndarray, magnitude: np.ndarray, affine: np.ndarray, dataset: dict,
                        raw: bool) -> str | None:
    """Does the magnitude agree with ``magnitude`` (swi / gre) and ``phase_sign``? An SWI is dark
    where the (right-handed) phase is negative (:func:`cmbflow.io.phase.swi_darkening`). A flipped
    handedness is refused (every CMB would read as diamagnetic); a magnitude that looks like the
    other kind than the one configured gets a warning (the evidence is one ratio)."""
    sign, kind = int(dataset["phase_sign"]), dataset["magnitude"]
    darkening = swi_darkening(sign * radians, magnitude, voxel_sizes(affine), raw)
    if not np.isfinite(darkening):
        return None  # too little phase contrast to tell
    if kind == "swi" and darkening >= FLIPPED_DARKENING_MIN:
        return (f"{files.phase}: the SWI {files.magnitude.name} is dark where this phase, times phase_sign {sign}, is positive "
                f"(darkening ratio {darkening:.2f}; an SWI read with its own handedness gives below {SWI_DARKENING_MAX:g}): the "
                f"phase has the other handedness. Set the dataset's phase_sign: {-sign}.")
    if kind == "swi" and darkening > SWI_DARKENING_MAX:
        log.warning("%s: no SWI darkening where the phase is negative (ratio %.2f; an SWI gives below %g): if this is the "
                    "plain gradient-echo magnitude, set the dataset's magnitude: gre, so that preprocessing forms the SWI "
                    "the networks read.", files.magnitude, darkening, SWI_DARKENING_MAX)
    if kind == "gre" and darkening <= SWI_DARKENING_MAX:
        log.warning("%s: darker where the phase is negative (ratio %.2f), as an SWI is: if it is an SWI already, set the "
                    "dataset's magnitude: swi (gre darkens it a second time).", files.magnitude, darkening)
    return None


def _markers_miss_mask(path: Path, markers, mask: np.ndarray, affine: np.ndarray) -> str | None:
    """Markers that lie further than :data:`MARKER_TO_MASK_MM` from every voxel of their own
    mask; says so when negating x and y (LPS instead of RAS+) would place them."""
    if markers.empty or not np.any(mask > 0):
        return None
    from scipy import ndimage

    distance = ndimage.distance_transform_edt(mask <= 0, sampling=voxel_sizes(affine))

    def misses(xyz):
        ijk = np.rint(world_to_voxel(affine, xyz)).astype(int)
        inside = np.all((ijk >= 0) & (ijk < np.array(mask.shape)), axis=1)
        far = np.ones(len(xyz), bool)
        far[inside] = distance[tuple(ijk[inside].T)] > MARKER_TO_MASK_MM
        return far

    xyz = markers[["x", "y", "z"]].to_numpy(float)
    missed = misses(xyz)
    if not missed.any():
        return None
    rows = ", ".join(str(i + 1) for i in np.flatnonzero(missed)[:10])
    hint = ("With x and y negated they would hit it: the markers are in LPS (ITK, ANTs, ITK-SNAP, 3D Slicer's default); "
            "negate x and y to make them RAS+." if missed.mean() > 0.5 and not misses(xyz * [-1, -1, 1]).any()
            else "Markers and mask must describe the same CMBs in world mm RAS+; fix or remove one of them.")
    return f"{path}: marker row(s) {rows} lie more than {MARKER_TO_MASK_MM:g} mm from every voxel of the subject's CMB mask. {hint}"


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
    dataset = dataset_entry(dataset)
    problems: list[str] = []
    row = {"subject": files.subject, "session": files.session or "", "key": files.key, "magnitude": str(files.magnitude),
           "phase": str(files.phase or ""), "mask": str(files.mask or ""), "markers": str(files.markers or ""), "n_cmb": 0,
           "phase_units": "", "phase_kind": "", "phase_filter": "", "shape": "", "voxel_mm": "", "orientation": ""}
    try:
        magnitude, affine = load_volume(files.magnitude)
    except InputError as error:
        return row, [str(error)]
    row.update(shape="x".join(map(str, magnitude.shape)), voxel_mm="x".join(f"{v:.3g}" for v in voxel_sizes(affine)),
               orientation="".join(nib.aff2axcodes(affine)))
    magnitude_nonfinite = _finite(files.magnitude, magnitude)
    problems.append(magnitude_nonfinite)
    problems.append(_magnitude_problem(files.magnitude, magnitude, affine))
    magnitude = zero_nonfinite(magnitude)  # what preprocessing reads; enclosed NaN is refused above

    if files.phase is None:
        row["phase_kind"], row["phase_filter"] = "none", "none"  # a dataset without phase: one-channel models only
    elif not files.phase.exists():
        problems.append(f"{files.magnitude}: no phase image; expected {files.phase}. cmbflow needs SWI magnitude and phase: "
                        f"add the phase file or set datasets.<name>.patterns.phase to where it is.")
    elif (field_map := _field_map_sidecar(files.phase)) is not None:
        problems.append(field_map)
    else:
        try:
            phase, phase_affine = load_volume(files.phase)
            problems.append(_same_grid(files.magnitude, magnitude.shape, affine, files.phase, phase.shape, phase_affine, tolerance_mm, "phase"))
            same_shape = phase.shape == magnitude.shape
            nonfinite = _finite(files.phase, phase)
            problems.append(nonfinite)
            phase = zero_nonfinite(phase)
            swapped = _swapped(files, magnitude, phase) if same_shape else None
            problems.append(swapped)
            if swapped is None and nonfinite is None and magnitude_nonfinite is None and same_shape:
                radians, row["phase_units"] = phase_to_radians(phase, dataset["phase_units"],
                                                               dataset.get("phase_code_range"), source=str(files.phase))
                not_phase = _phase_problem(files.phase, files.magnitude, phase, radians, magnitude)
                problems.append(not_phase)
                if not_phase is None:
                    row["phase_kind"], row["phase_filter"] = _phase_filter(files.phase, radians, magnitude, affine, dataset)
                    problems.append(_handedness_problem(files, radians, magnitude, affine, dataset, row["phase_kind"] == "raw"))
        except InputError as error:
            problems.append(str(error))

    n_cmb, mask = 0, None
    if files.mask is not None:
        try:
            mask, mask_affine = load_volume(files.mask)
            grid = _same_grid(files.magnitude, magnitude.shape, affine, files.mask, mask.shape, mask_affine, tolerance_mm, "CMB mask")
            problems.append(grid)
            problems.append(_finite(files.mask, mask, background_ok=False))
            if grid is None and np.all(np.isfinite(mask)):
                if np.any(mask < 0) or not np.allclose(mask, np.rint(mask)):
                    problems.append(f"{files.mask}: CMB mask must hold non-negative integers (instance labels or a 0/1 mask).")
                    mask = None
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
            if mask is not None and grid is None:
                problems.append(_markers_miss_mask(files.markers, markers, mask, affine))
            if files.mask is None:
                n_cmb = len(markers)
        except InputError as error:
            problems.append(str(error))
    if annotations_required and files.mask is None and files.markers is None:
        problems.append(f"{files.magnitude}: no CMB annotation (mask or markers) found; a training dataset (role internal or train) "
                        "needs them. Add derivatives/cmb_labels/... files (a subject with zero CMBs gets an empty mask or a "
                        "markers file with only the header), or set the dataset's role to external.")
    row["n_cmb"] = n_cmb
    return row, [p for p in problems if p]


def _phase_filter(path: Path, radians: np.ndarray, magnitude: np.ndarray, affine: np.ndarray, dataset: dict) -> tuple[str, str]:
    """``(phase kind found, filter preprocessing applies)``: config ``phase_filter`` ``auto``
    filters raw phase (homodyne) and leaves filtered phase alone; ``homodyne`` / ``none``
    are followed, with a warning where they contradict what the phase looks like. ``dataset``:
    the entry with its defaults (:func:`check_subject` fills them)."""
    kind = phase_kind(radians, magnitude, voxel_sizes(affine))
    setting = dataset["phase_filter"]
    chosen = ("homodyne" if kind == "raw" else "none") if setting == "auto" else setting
    if setting == "none" and kind == "raw":
        log.warning("%s: the phase looks raw (background field and wraps), but phase_filter is none: the networks "
                    "expect high-pass filtered phase. Set phase_filter: auto unless you know better.", path)
    if setting == "homodyne" and kind == "filtered":
        log.warning("%s: the phase looks high-pass filtered already; phase_filter: homodyne filters it again.", path)
    if chosen == "homodyne":
        log.info("%s: %s phase; preprocessing applies a homodyne high-pass of %g mm", path, kind,
                 float(dataset["phase_filter_mm"]))
    return kind, chosen


def validate_dataset(name: str, dataset: dict, tolerance_mm: float = 0.01, subjects: list[SubjectFiles] | None = None) -> pd.DataFrame:
    """Validate every subject of a dataset; return its manifest or raise :class:`InputError`
    listing every problem found (one line each)."""
    subjects = subjects if subjects is not None else discover_subjects(name, dataset)
    rows, problems = [], []
    for files in subjects:
        row, found = check_subject(files, dataset, tolerance_mm, annotations_required=dataset.get("role") in TRAINING_ROLES)
        rows.append(row)
        problems.extend(found)
    if problems:
        raise InputError(f"dataset '{name}': {len(problems)} input problem(s):\n  - " + "\n  - ".join(problems))
    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    log.info("dataset '%s': %d subjects valid, %d CMBs annotated", name, len(manifest), int(manifest["n_cmb"].sum()))
    return manifest
