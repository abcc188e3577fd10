"""CMB annotations: instance masks and marker tables (world mm RAS+ of the image).

Markers come as our tab-separated table (``x y z`` world mm RAS+), or as 3D Slicer writes a
rater's points: markups JSON (``.mrk.json``) or the older fiducial CSV (``.fcsv``), whose
positions are LPS (Slicer's default since 4.11) or RAS as the file says; both become RAS+ here.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from cmbflow.io.coords import lps_to_ras
from cmbflow.io.nifti import InputError

log = logging.getLogger(__name__)

MARKER_COLUMNS = ("x", "y", "z")
REGIONS = ("lobar", "deep", "infratentorial")  # the MARS regions a marker may name
# A marker's optional ``rating``, as MARS ("definite" / "possible") and BOMBS ("certain" /
# "uncertain") rate microbleeds: possible ones are left out of scoring (neither a miss nor, when
# a candidate finds one, a false positive), as LUNA16 does with its excluded findings.
DEFINITE_RATINGS = ("definite", "certain", "")
POSSIBLE_RATINGS = ("possible", "uncertain")
MARKER_EXTENSIONS = (".tsv", ".mrk.json", ".fcsv")  # our table; Slicer's markups JSON and fiducial CSV
FCSV_FRAMES = {"ras": "RAS", "0": "RAS", "lps": "LPS", "1": "LPS"}  # the CoordinateSystem header of a .fcsv
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


def _slicer_table(path: Path, ras: list, frames: set[str]) -> pd.DataFrame:
    """Slicer points, already converted to world mm RAS+, as a markers table."""
    xyz = np.asarray(ras, float).reshape(-1, 3)
    log.info("%s: %d Slicer point(s) read (%s, converted to RAS+)", path, len(xyz), "/".join(sorted(frames)) or "no frame")
    return pd.DataFrame({"x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2]})


def _read_markups_json(path: Path) -> pd.DataFrame:
    """The defined control points of every point list (``Fiducial``) in a Slicer markups JSON;
    other markups (lines, curves) and undefined points are skipped, and said so."""
    try:
        markups = json.loads(path.read_text())["markups"]
        iter(markups)
    except (ValueError, KeyError, TypeError) as error:
        raise InputError(f"{path}: not a Slicer markups file ({error!r}). Save the points from Slicer as Markups JSON "
                         "(.mrk.json), or write a tab-separated .tsv with columns x y z in world mm (RAS+).") from None
    ras, frames = [], set()
    for markup in markups:
        points, name = markup.get("controlPoints") or [], markup.get("name", "")
        if markup.get("type", "Fiducial") != "Fiducial":
            log.warning("%s: %s markup '%s' (%d points) skipped: only point lists (Fiducial) are CMB markers", path,
                        markup.get("type"), name, len(points))
            continue
        units = markup.get("coordinateUnits", "mm")
        frame = str(markup.get("coordinateSystem", "LPS")).upper()
        if units != "mm" or frame not in ("LPS", "RAS"):
            raise InputError(f"{path}: markup '{name}' has coordinates {frame} in {units!r}; CMB markers need world mm, "
                             "LPS or RAS. Save the points from Slicer again.")
        defined = [p for p in points if p.get("positionStatus", "defined") == "defined"]
        if len(defined) < len(points):
            log.warning("%s: %d point(s) of '%s' skipped: no defined position (positionStatus)", path, len(points) - len(defined), name)
        xyz = np.asarray([p["position"] for p in defined], float).reshape(-1, 3)
        ras.extend(lps_to_ras(xyz) if frame == "LPS" else xyz)
        frames.add(frame)
    return _slicer_table(path, ras, frames)


def _read_fcsv(path: Path) -> pd.DataFrame:
    """Slicer's fiducial CSV (``# CoordinateSystem = LPS | RAS | 0 | 1``, then ``id,x,y,z,...``)."""
    header = [line for line in path.read_text(errors="replace").splitlines() if line.startswith("#")]
    frame_lines = [line.split("=", 1)[1].strip().lower() for line in header if line[1:].strip().lower().startswith("coordinatesystem")]
    frame = FCSV_FRAMES.get(frame_lines[0] if frame_lines else "ras")  # files before Slicer 4.11 carry no header: RAS
    if frame is None:
        raise InputError(f"{path}: CoordinateSystem {frame_lines[0]!r}; world LPS or RAS (mm) is needed. Export the points "
                         "from Slicer again.")
    columns = next((line.split("=", 1)[1].strip().split(",") for line in header if line[1:].strip().lower().startswith("columns")),
                   ["id", "x", "y", "z"])
    try:
        table = pd.read_csv(path, comment="#", header=None, names=columns, usecols=range(min(len(columns), 4)), dtype={0: str})
    except pd.errors.EmptyDataError:
        table = pd.DataFrame(columns=columns[:4])
    except Exception as error:
        raise InputError(f"{path}: cannot be read as a Slicer fiducial file ({error}).") from error
    if not {"x", "y", "z"} <= set(table.columns):
        raise InputError(f"{path}: the columns line names {columns[:4]}; a Slicer fiducial file has id,x,y,z first.")
    try:
        positions = table[["x", "y", "z"]].to_numpy(float)
    except ValueError as error:
        raise InputError(f"{path}: positions must be numbers ({error}).") from None
    return _slicer_table(path, lps_to_ras(positions) if frame == "LPS" else positions, {frame})


def read_markers(path: str | Path) -> pd.DataFrame:
    """Read a markers table: TSV with columns ``x y z`` (world mm RAS+) and optional ``radius_mm``,
    ``region``; or a Slicer ``.mrk.json`` / ``.fcsv`` point list (module docstring). Positions
    returned are world mm RAS+."""
    path = Path(path)
    if path.name.lower().endswith(".mrk.json"):
        return _check_markers(path, _read_markups_json(path))
    if path.suffix.lower() == ".fcsv":
        return _check_markers(path, _read_fcsv(path))
    try:
        table = pd.read_csv(path, sep="\t")
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: markers file is empty. Write at least the header line 'x\\ty\\tz' (a subject with no CMB is valid).") from None
    except Exception as error:
        raise InputError(f"{path}: cannot be read as a tab-separated table ({error}).") from error
    if len(table.columns) == 1 and re.search(r"[,;\s]", str(table.columns[0]).strip()):
        # one column whose header holds commas, semicolons or spaces: a spreadsheet's CSV saved under our name
        try:
            table = pd.read_csv(path, sep=r"\s*[,;]\s*|\s+", engine="python")
        except Exception as error:
            raise InputError(f"{path}: cannot be read as a table ({error}). Save it tab-separated with columns x y z.") from error
        log.warning("%s: not tab-separated; read as separated by commas, semicolons or spaces (columns %s)", path,
                    list(table.columns))
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
    return _check_markers(path, table)


def _check_markers(path: Path, table: pd.DataFrame) -> pd.DataFrame:
    """Finite positions, positive radii and known regions, or an error naming the file."""
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
    if "rating" in table.columns:
        rated = table["rating"].fillna("").astype(str).str.strip().str.lower()
        odd = sorted(set(rated[~rated.isin(DEFINITE_RATINGS + POSSIBLE_RATINGS)]))
        if odd:  # scored as definite: an unknown word never takes a CMB out of scoring
            log.warning("%s: rating %s is not a CMB rating (definite or possible; BOMBS: certain or uncertain); those CMBs "
                        "are scored as definite", path, odd)
        table["rating"] = np.where(rated.isin(POSSIBLE_RATINGS), "possible", "definite")
    return table
