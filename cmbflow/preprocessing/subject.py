"""One subject from its input files to the model-ready frame (see :func:`preprocess_subject`)."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import ants
import numpy as np
import pandas as pd
from scipy import ndimage

from cmbflow.atlas import REGION_NAMES
from cmbflow.io.annotations import instance_labels, read_markers
from cmbflow.io.coords import voxel_sizes, voxel_to_world, world_to_voxel
from cmbflow.io.nifti import load_volume, save_volume, zero_nonfinite
from cmbflow.io.phase import phase_to_radians
from cmbflow.phase_filter import highpass_phase, swi_from, swi_weights
from cmbflow.preprocessing import quality
from cmbflow.preprocessing.antsimage import from_ants, to_ants
from cmbflow.preprocessing.grid import Grid, cropped_grid
from cmbflow.preprocessing.intensity import foreground_mask, n4_correct, n4_shrink, normalize_phase, robust_scale
from cmbflow.preprocessing.registration import RegistrationSettings, atlas_label_image, register_template, warp_atlas
from cmbflow.preprocessing.resample import resample_lesions, resample_to_grid
from cmbflow.settings import dataset_entry, schema_defaults, settings_from_config

log = logging.getLogger(__name__)

# id: marker id; label: the CMB mask instance at the marker (0 if none); x y z world mm RAS+ of
# the source image; i j k voxel of the model-ready grid; region annotated, atlas_region warped atlas.
SWI_POWER = 4  # the negative-phase mask's power of clinical SWI (Haacke et al. 2004)
MARKER_TABLE_COLUMNS = ["id", "label", "x", "y", "z", "i", "j", "k", "radius_mm", "region", "atlas_region"]


@dataclass(frozen=True)
class TemplateFiles:
    """A registration template: ``image`` (SWI-like or T1w), its MARS ``regions`` and ``brainmask``."""

    image: str
    regions: str
    brainmask: str


@dataclass(frozen=True)
class PreprocSettings:
    """Config ``preprocessing`` with the target spacing resolved (world mm per voxel)."""

    target_spacing_mm: tuple[float, float, float]
    crop_margin_mm: float
    swi_percentiles: tuple[float, float]
    n4_shrink_factor: int
    n4_shrink_mm: float
    n4_iterations: tuple[int, ...]
    n4_spline_distance_mm: float
    registration: RegistrationSettings

    @classmethod
    def from_config(cls, options: dict, target_spacing_mm) -> "PreprocSettings":
        """From the validated section (its ``template`` and ``threads`` are the rules');
        ``target_spacing_mm`` as :func:`cmbflow.config.target_spacing` resolves it."""
        flat = {"target_spacing_mm": tuple(float(v) for v in target_spacing_mm), "crop_margin_mm": options["crop_margin_mm"],
                "swi_percentiles": options["swi_percentiles"], **{f"n4_{key}": value for key, value in options["n4"].items()},
                "registration": RegistrationSettings.from_config(options["registration"])}
        return settings_from_config(cls, flat, "preprocessing")

    @classmethod
    def defaults(cls, target_spacing_mm, **overrides) -> "PreprocSettings":
        """The schema's defaults, with ``overrides`` of the section's keys."""
        return cls.from_config({**schema_defaults("preprocessing"), **overrides}, target_spacing_mm)


@dataclass
class Preprocessed:
    """What :func:`preprocess_subject` produced, for QC figures: arrays on ``grid``
    (model-ready frame), markers in world mm RAS+ with voxel indices of ``grid``."""

    grid: Grid
    swi: np.ndarray
    regions: np.ndarray
    brainmask: np.ndarray
    markers: pd.DataFrame
    quality: dict


def load_annotations(mask_path: str, markers_path: str, affine: np.ndarray) -> tuple[np.ndarray | None, pd.DataFrame]:
    """Instance labels (or None) and a markers table (world mm RAS+, columns ``id x y z`` and
    ``radius_mm`` / ``region`` when known). Without a markers file, markers are the mask's
    instance centroids."""
    labels = None
    if mask_path:
        mask, _ = load_volume(mask_path)
        labels = instance_labels(mask)
    if markers_path:
        markers = read_markers(markers_path).reset_index(drop=True)
        ids = markers["label"] if "label" in markers.columns else pd.Series(np.arange(1, len(markers) + 1))
        markers.insert(0, "id", ids.astype(int).to_numpy())
    elif labels is not None:
        ids = [int(v) for v in np.unique(labels) if v]
        centres = np.array(ndimage.center_of_mass(labels > 0, labels, ids)).reshape(-1, 3)
        xyz = voxel_to_world(affine, centres) if ids else np.zeros((0, 3))
        markers = pd.DataFrame({"id": ids, "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2]})
    else:
        markers = pd.DataFrame({"id": pd.Series(dtype=int), **{c: pd.Series(dtype=float) for c in "xyz"}})
    return labels, markers


def _marker_table(markers: pd.DataFrame, labels: np.ndarray | None, grid: Grid, native_regions: np.ndarray,
                  native_affine: np.ndarray) -> pd.DataFrame:
    xyz = markers[["x", "y", "z"]].to_numpy(float)
    ijk = world_to_voxel(grid.affine, xyz) if len(xyz) else np.zeros((0, 3))
    instance = quality.lookup(labels, native_affine, xyz) if labels is not None else np.zeros(len(xyz), int)
    table = pd.DataFrame({"id": markers["id"].to_numpy(int), "label": instance.astype(int), "x": xyz[:, 0], "y": xyz[:, 1],
                          "z": xyz[:, 2], "i": ijk[:, 0], "j": ijk[:, 1], "k": ijk[:, 2]})
    table["radius_mm"] = markers["radius_mm"].to_numpy(float) if "radius_mm" in markers.columns else np.nan
    table["region"] = markers["region"].to_numpy() if "region" in markers.columns else ""
    atlas_codes = quality.lookup(native_regions, native_affine, xyz)
    table["atlas_region"] = [REGION_NAMES[int(c)] for c in atlas_codes]
    return table[MARKER_TABLE_COLUMNS]


def _quality_row(key, corrected, template_image, forward, native_brain, foreground, native_regions, affine, markers,
                 phase_norm, grid, truth_regions, spacing_mm: float) -> dict:
    """Registration quality of one subject (see :mod:`cmbflow.preprocessing.quality`). Mutual
    information is measured at the registration's ``spacing_mm``, the scale it was optimized at
    (at a fine scan's own voxels it cost a sixth of the subject's preprocessing)."""
    fixed = ants.resample_image(corrected, (spacing_mm,) * 3, use_voxels=False, interp_type=0)
    brain = ants.resample_image_to_target(to_ants(native_brain, affine), fixed, interp_type="nearestNeighbor")
    warped_template = ants.apply_transforms(fixed, template_image, [forward], interpolator="linear")
    row = {
        "subject": key,
        "mattes_mi": float(ants.image_similarity(fixed, warped_template, "MattesMutualInformation", fixed_mask=brain)),
        "brain_dice_vs_foreground": quality.dice(native_brain, foreground),
        "brain_volume_ml": float(native_brain.sum() * abs(np.linalg.det(affine[:3, :3])) / 1000),
        "n_markers": len(markers),
        "marker_region_agreement": quality.marker_region_agreement(markers, native_regions, affine),
        "cmb_phase_lobe": quality.dipole_lobe_phase(phase_norm, grid.affine, markers) if phase_norm is not None else float("nan"),
    }
    if truth_regions:
        truth, _ = load_volume(truth_regions, dtype=np.uint8)
        row.update(quality.region_dice(native_regions, truth))
    return row


def _sidecar(files, grid, settings, percentiles, phase_note, phase_sign, template, magnitude_kind) -> dict:
    """JSON sidecar of the model-ready images: where they came from and how they were made."""
    return {
        "Sources": {"magnitude": str(files["magnitude"]), "phase": str(files.get("phase") or ""),
                    "mask": str(files.get("mask") or ""), "markers": str(files.get("markers") or "")},
        "Grid": {"Shape": list(grid.shape), "SpacingMm": [float(v) for v in grid.spacing],
                 "Affine": np.round(grid.affine, 6).tolist(), "Frame": "world mm RAS+ of the source image, axes along R, A, S"},
        "SwiScaling": {"Method": "brain percentiles", "Percentiles": list(settings.swi_percentiles),
                       "Values": list(percentiles), "N4": True},
        "Magnitude": ("SWI as given" if magnitude_kind == "swi" else "SWI formed from GRE magnitude (negative-phase mask^4)"
                      if files.get("phase") else "GRE magnitude as given (no phase to form the SWI from)"),
        "Phase": ({"Units": phase_note, "Filter": files.get("phase_filter") or "none", "PhaseSign": phase_sign, "Range": [-1, 1],
                   "Scaling": "phase_sign * radians / pi"} if files.get("phase") else "none: the dataset has no phase (phase: false)"),
        "Template": asdict(template),
        "Registration": asdict(settings.registration),
        "Annotated": bool(files.get("mask") or files.get("markers")),
    }


def _filtered_phase(files: dict, dataset: dict, magnitude: np.ndarray, magnitude_kind: str,
                    affine: np.ndarray) -> tuple[np.ndarray | None, str, str]:
    """``(phase in radians, high-pass filtered; how it was read; the filter applied)``; no
    phase (None) for a dataset without one (its manifest row's ``phase`` is empty).
    ``magnitude_kind`` (``swi`` or ``gre``) says how the magnitude weights the high-pass."""
    if not files.get("phase"):
        log.info("no phase (the dataset has none): SWI channel only")
        return None, "none", "none"
    phase_raw = zero_nonfinite(load_volume(files["phase"])[0])  # NaN only as a background reaching the border (validation)
    phase, note = phase_to_radians(phase_raw, dataset["phase_units"], dataset.get("phase_code_range"),
                                   source=str(files["phase"]))
    del phase_raw
    phase_filter = files.get("phase_filter") or "none"  # decided once, by validation (manifest)
    if phase_filter == "homodyne":
        width_mm = float(dataset["phase_filter_mm"])
        gre = magnitude_kind == "gre"
        weights = magnitude if gre else swi_weights(magnitude, voxel_sizes(affine))
        phase = highpass_phase(weights, phase, voxel_sizes(affine), width_mm)
        note += (f"; homodyne high-pass of {width_mm:g} mm ({files.get('phase_kind') or 'raw'} phase), weighted by the "
                 + ("GRE magnitude" if gre else "SWI magnitude's grey closing"))
        log.info("phase: homodyne high-pass of %g mm", width_mm)
    return phase, note, phase_filter


def preprocess_subject(key: str, files: dict, dataset: dict, template: TemplateFiles, settings: PreprocSettings,
                       outputs: dict[str, str], truth_regions: str | None = None) -> Preprocessed:
    """Bias-correct, register the template, warp its atlas, and resample one subject onto
    its model-ready grid; write every file of :func:`cmbflow.paths.preproc_subject_files`
    except the QC figure.

    ``key``: the subject key (``001`` or ``001_ses-1``). ``files``: a manifest row
    (``magnitude``, ``phase``, ``mask``, ``markers``; annotation paths may be empty, and the phase of a dataset
    without phase). ``dataset``: its config (``phase_units``, ``phase_code_range``,
    ``phase_sign``). ``truth_regions``: a reference MARS map on the subject grid, if any.
    """
    started = time.perf_counter()
    dataset = dataset_entry(dataset)
    magnitude, affine = load_volume(files["magnitude"])
    magnitude = zero_nonfinite(magnitude)  # NaN only as a background reaching the border (validation)
    phase_sign = int(dataset["phase_sign"])
    magnitude_kind = dataset["magnitude"]
    phase, phase_note, phase_filter = _filtered_phase(files, dataset, magnitude, magnitude_kind, affine)
    if magnitude_kind == "gre" and phase is not None:  # the networks read SWI: form it as the scanner would
        magnitude = swi_from(np.maximum(magnitude, 0), phase_sign * phase, power=SWI_POWER)
        log.info("SWI formed from the GRE magnitude and the filtered phase (negative-phase mask^%d)", SWI_POWER)
    elif magnitude_kind == "gre":
        log.warning("%s: GRE magnitude and no phase to form the SWI from: the magnitude is used as it is (T2*-weighted)",
                    files["magnitude"])
    labels, markers = load_annotations(files.get("mask") or "", files.get("markers") or "", affine)

    subject_image = to_ants(magnitude, affine)
    foreground = foreground_mask(subject_image)
    shrink = n4_shrink(subject_image.spacing, settings.n4_shrink_factor, settings.n4_shrink_mm)
    corrected = n4_correct(subject_image, foreground, shrink, settings.n4_iterations,
                           settings.n4_spline_distance_mm)
    log.info("N4 bias correction done (%.1f s)", time.perf_counter() - started)

    template_image = to_ants(*load_volume(template.image))
    template_labels = atlas_label_image(to_ants(*load_volume(template.regions)), to_ants(*load_volume(template.brainmask)))
    registration = register_template(corrected, template_image, settings.registration,
                                     outputs["xfm_to_native"], outputs["xfm_to_template"])
    registered_s = time.perf_counter() - started
    log.info("registration %s done (%.1f s)", "->".join(registration.stages), registered_s)

    # Atlas and brain mask straight from the template onto each grid: one interpolation for both.
    native_regions, native_brain = warp_atlas(template_labels, subject_image, registration.forward)
    grid = cropped_grid(native_brain | foreground.numpy().astype(np.uint8), affine, settings.target_spacing_mm,
                        settings.crop_margin_mm)
    reference = to_ants(np.zeros(grid.shape, np.float32), grid.affine)
    regions, brain = warp_atlas(template_labels, reference, registration.forward)

    corrected_array, _ = from_ants(corrected)
    swi, percentiles = robust_scale(resample_to_grid(corrected_array, affine, grid, "linear"), brain, settings.swi_percentiles)
    phase_norm = normalize_phase(resample_to_grid(phase, affine, grid, "phase"), phase_sign) if phase is not None else None
    table = _marker_table(markers, labels, grid, native_regions, affine)
    if labels is not None:
        centres = {int(row.label): np.array([row.x, row.y, row.z]) for row in table.itertuples() if row.label > 0}
        cmb_mask = resample_lesions(labels, affine, grid, centres)
    else:
        cmb_mask = np.zeros(grid.shape, np.int32)

    for name, array, dtype in (("swi", swi, np.float32), ("phase", phase_norm, np.float32), ("brainmask", brain, np.uint8),
                               ("regions", regions, np.uint8), ("cmb_mask", cmb_mask, np.int16)):
        if array is not None:  # no phase: a dataset without one (its preprocessing declares no phase output)
            save_volume(outputs[name], array, grid.affine, dtype=dtype)
    save_volume(outputs["native_regions"], native_regions, affine, dtype=np.uint8)
    save_volume(outputs["native_brainmask"], native_brain, affine, dtype=np.uint8)
    table.to_csv(outputs["markers"], sep="\t", index=False, float_format="%.3f")

    row = _quality_row(key, corrected, template_image, registration.forward, native_brain, foreground.numpy(), native_regions,
                       affine, markers, phase_norm, grid, truth_regions, settings.registration.spacing_mm)
    row["phase_filter"] = phase_filter
    row["registration_s"] = round(registered_s, 1)
    row["total_s"] = round(time.perf_counter() - started, 1)
    pd.DataFrame([row]).to_csv(outputs["quality"], sep="\t", index=False, float_format="%.4f")

    sidecar = _sidecar(files, grid, settings, percentiles, phase_note, phase_sign, template, magnitude_kind)
    Path(outputs["sidecar"]).write_text(json.dumps(sidecar, indent=2) + "\n")
    log.info("model-ready grid %s at %s mm; SWI percentiles %.3g..%.3g; %d markers; %.1f s in all",
             grid.shape, settings.target_spacing_mm, *percentiles, len(table), row["total_s"])
    return Preprocessed(grid, swi, regions, brain, table, row)
