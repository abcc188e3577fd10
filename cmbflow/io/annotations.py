"""CMB annotations: instance masks and marker tables (world mm RAS+ of the image)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from cmbflow.io.nifti import InputError

MARKER_COLUMNS = ("x", "y", "z")
REGIONS = ("lobar", "deep", "infratentorial")  # the MARS regions a marker may name
FULL_CONNECTIVITY = np.ones((3, 3, 3), bool)


def instance_labels(mask: np.ndarray) -> np.ndarray:
    """Integer instance labels (int32) from a mask: a two-valued mask (0/1, or 0/255 and the
    like that ITK-SNAP, ImageJ and FSL write) is binary and split into connected components
    (26-connectivity); a mask of several labels is kept as it is (instance labels)."""
    values = np.unique(mask)
    if np.count_nonzero(values) <= 1:
        labels, _ = ndimage.label(mask > 0, structure=FULL_CONNECTIVITY)
        return labels.astype(np.int32)
    return np.rint(mask).astype(np.int32)


def read_markers(path: str | Path) -> pd.DataFrame:
    """Read a markers TSV with columns ``x y z`` (world mm RAS+) and optional ``radius_mm``, ``region``."""
    path = Path(path)
    try:
        table = pd.read_csv(path, sep="\t")
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: markers file is empty. Write at least the header line 'x\\ty\\tz' (a subject with no CMB is valid).") from None
    except Exception as error:
        raise InputError(f"{path}: cannot be read as a tab-separated table ({error}).") from error
    # Column names are read case-blind and stripped (X, Y, Z from a spreadsheet); no two may then coincide.
    names = [str(c).strip().lower() for c in table.columns]
    if len(set(names)) == len(names):
        table.columns = names
    missing = [c for c in MARKER_COLUMNS if c not in table.columns]
    if missing:
        voxels = {"i", "j", "k"} <= set(names)
        raise InputError(f"{path}: markers table lacks column(s) {missing}; found {list(table.columns)}. "
                         "Columns must be tab-separated 'x y z' in world mm (RAS+), optional 'radius_mm', 'region'."
                         + (" Columns i, j, k look like voxel indices: convert them to world mm with the image's affine "
                            "(nibabel: nib.affines.apply_affine(image.affine, ijk))." if voxels else ""))
    numeric = MARKER_COLUMNS + (("radius_mm",) if "radius_mm" in table.columns else ())
    if table.empty:  # a header-only file: a subject without CMBs
        return table.astype({column: float for column in numeric})
    for column in numeric:
        if not pd.api.types.is_numeric_dtype(table[column]) or not np.all(np.isfinite(table[column])):
            raise InputError(f"{path}: column '{column}' must hold finite numbers (world mm).")
    if "radius_mm" in table.columns and (table["radius_mm"] <= 0).any():
        rows = [str(i + 2) for i in np.flatnonzero(table["radius_mm"] <= 0)]
        raise InputError(f"{path}: radius_mm must be positive; line(s) {', '.join(rows[:10])} hold zero or negative radii. "
                         "Fix them, or drop the column (radii are then taken from the mask).")
    if "region" in table.columns:
        named = table["region"].fillna("").astype(str).str.strip().str.lower()
        odd = sorted(set(named[(named != "") & ~named.isin(REGIONS)]))
        if odd:
            raise InputError(f"{path}: region {odd} is not a MARS region; use {', '.join(REGIONS)} (or leave the cell empty "
                             "to have cmbflow place the CMB).")
        table["region"] = named
    return table
