"""Registration quality: numbers for every subject, plus truth-based ones where a
reference region map (the synthetic generator's) or region-labelled markers exist."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cmbflow.atlas import REGION_NAMES
from cmbflow.io.coords import world_to_voxel

REGION_CODES = {name: code for code, name in REGION_NAMES.items()}


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two boolean masks (1.0 when both are empty)."""
    a, b = a.astype(bool), b.astype(bool)
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def region_dice(predicted: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Dice per MARS class (``dice_lobar``, ``dice_deep``, ``dice_infratentorial``)."""
    return {f"dice_{name}": dice(predicted == code, reference == code) for code, name in REGION_NAMES.items() if code}


def lookup(volume: np.ndarray, affine: np.ndarray, xyz: np.ndarray) -> np.ndarray:
    """Values of ``volume`` at world mm RAS+ points ``(N, 3)`` (nearest voxel; 0 outside)."""
    ijk = np.rint(world_to_voxel(affine, xyz)).astype(int) if len(xyz) else np.zeros((0, 3), int)
    inside = np.all((ijk >= 0) & (ijk < np.array(volume.shape)), axis=1)
    values = np.zeros(len(ijk), dtype=volume.dtype)
    values[inside] = volume[tuple(ijk[inside].T)]
    return values


def marker_region_agreement(markers: pd.DataFrame, regions: np.ndarray, affine: np.ndarray) -> float:
    """Share of markers (world mm RAS+, with a ``region`` name column) whose voxel in the
    warped atlas ``regions`` carries that region; NaN without such markers."""
    if "region" not in markers.columns or markers.empty:
        return float("nan")
    found = lookup(regions, affine, markers[["x", "y", "z"]].to_numpy(float))
    expected = markers["region"].map(REGION_CODES).to_numpy()
    return float(np.mean(found == expected))


def dipole_lobe_phase(phase: np.ndarray, affine: np.ndarray, markers: pd.DataFrame,
                      default_radius_mm: float = 1.5) -> float:
    """Median normalized phase just beyond each CMB along B0 (world +-z), where the field
    of a paramagnetic sphere is strongest (2x the equatorial lobe): its sign shows the
    phase convention. ``phase`` on ``affine`` (world-aligned grid); NaN without markers."""
    if markers.empty:
        return float("nan")
    xyz = markers[["x", "y", "z"]].to_numpy(float)
    radius = markers["radius_mm"].to_numpy(float) if "radius_mm" in markers.columns else np.full(len(xyz), default_radius_mm)
    step = radius + 1.5 * abs(affine[2, 2])
    offsets = np.zeros_like(xyz)
    offsets[:, 2] = step
    values = np.concatenate([lookup(phase, affine, xyz + offsets), lookup(phase, affine, xyz - offsets)])
    return float(np.median(values))


def summarize(rows: pd.DataFrame, mad_factor: float = 3.0) -> pd.DataFrame:
    """Per-dataset quality table: one row per subject plus ``flag`` = ``check`` where the
    final mutual information (negative; closer to 0 is worse) is an outlier of the dataset
    (above median + ``mad_factor`` x 1.4826 MAD) or the warped brain mask and the
    intensity foreground overlap with Dice < 0.8."""
    table = rows.sort_values("subject").reset_index(drop=True)
    mi = table["mattes_mi"]
    spread = 1.4826 * float((mi - mi.median()).abs().median())
    outlier = (mi > mi.median() + mad_factor * max(spread, 1e-3)) | (table["brain_dice_vs_foreground"] < 0.8)
    table["flag"] = np.where(outlier, "check", "ok")
    return table
