"""The census of one subject for review in the viewers clinicians use: a 3D Slicer markups file
and a label map on the subject's original grid (ITK-SNAP, FSLeyes, Slicer, MRIcroGL).

* **Markups** (``.mrk.json``, Slicer's markups JSON, schema v1.0.3): one ``Fiducial`` markup
  whose control points are the census CMBs, best first, labelled ``CMB <n>`` with their
  region, score and diameter in the description. Positions are world mm in the LPS frame,
  the frame Slicer itself writes (``coordinateSystem: LPS``), converted from our RAS+ tables
  by :func:`cmbflow.io.coords.ras_to_lps`; they land on the CMBs of the original scan.
* **Label map** (NIfTI, int16, the original image's grid and affine): CMB ``n`` is a ball of
  its detected diameter (at least one voxel) labelled ``n``; where balls overlap the better
  scoring CMB keeps the voxel. 0 elsewhere; a subject without CMBs gets an empty map.

Why by hand: the markups file is a small, documented JSON format and the only library that
writes it is Slicer itself.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from cmbflow import paths
from cmbflow.io.coords import ras_to_lps, voxel_sizes, world_to_voxel
from cmbflow.io.nifti import image_geometry, save_volume

log = logging.getLogger(__name__)

MARKUPS_SCHEMA = ("https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/Resources/"
                  "Schema/markups-schema-v1.0.3.json#")


def slicer_markups(cmbs: pd.DataFrame, name: str) -> dict:
    """Slicer markups JSON of one subject's census rows (``x, y, z`` world mm RAS+,
    ``score``, ``diameter_mm``, ``region``, best first): a fiducial list called ``name``."""
    positions = ras_to_lps(cmbs[["x", "y", "z"]].to_numpy(float).reshape(-1, 3))
    points = [{"id": str(n), "label": f"CMB {n}",
               "description": f"{row.region}; score {row.score:.3f}; diameter {row.diameter_mm:.1f} mm",
               "associatedNodeID": "", "position": [round(float(v), 4) for v in position],
               "orientation": [-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0],  # Slicer's default for LPS files
               "selected": True, "locked": True, "visibility": True, "positionStatus": "defined"}
              for n, (row, position) in enumerate(zip(cmbs.itertuples(), positions), start=1)]
    return {"@schema": MARKUPS_SCHEMA,
            "markups": [{"type": "Fiducial", "name": name, "coordinateSystem": "LPS", "coordinateUnits": "mm",
                         "locked": True, "labelFormat": "CMB %d", "controlPoints": points}]}


def label_map(cmbs: pd.DataFrame, affine: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """int16 labels on the grid ``(affine, shape)``: census row ``n`` (1-based, best first) is
    the ball of its ``diameter_mm`` around ``x, y, z`` (world mm RAS+), at least its nearest voxel."""
    labels = np.zeros(shape, np.int16)
    centres = world_to_voxel(affine, cmbs[["x", "y", "z"]].to_numpy(float).reshape(-1, 3))
    spacing = voxel_sizes(affine)
    for n in range(len(cmbs), 0, -1):  # worst first, so that a better CMB overwrites where balls overlap
        centre, radius = centres[n - 1], float(cmbs["diameter_mm"].iloc[n - 1]) / 2
        reach = np.ceil(radius / spacing).astype(int)
        low = np.maximum(np.floor(centre).astype(int) - reach, 0)
        high = np.minimum(np.ceil(centre).astype(int) + reach + 1, shape)
        if np.any(high <= low):
            continue  # outside the grid: cannot happen for a census of this image
        box = np.indices(tuple(high - low)).reshape(3, -1).T + low
        offsets = (box - centre) @ affine[:3, :3].T  # world mm from the centre
        inside = box[np.linalg.norm(offsets, axis=1) <= radius]
        if not len(inside):  # smaller than a voxel: its nearest voxel
            inside = np.clip(np.rint(centre).astype(int), 0, np.array(shape) - 1)[None]
        labels[tuple(inside.T)] = n
    return labels


def write_subject_exports(cmbs: pd.DataFrame, subject: str, original: str, name: str, markups_path: str,
                          labels_path: str) -> int:
    """Write ``subject``'s markups and label map (its rows of the census ``cmbs``) for the
    ``original`` magnitude image; returns its number of CMBs."""
    mine = cmbs[cmbs["subject"].astype(str) == str(subject)].reset_index(drop=True)
    shape, affine = image_geometry(original)
    save_volume(labels_path, label_map(mine, affine, shape), affine)
    Path(markups_path).parent.mkdir(parents=True, exist_ok=True)
    Path(markups_path).write_text(json.dumps(slicer_markups(mine, name), indent=2) + "\n")
    return len(mine)


def export_census(cmbs_table: str, originals: dict[str, str], variant: str, dataset: str) -> None:
    """Markups and label map (:func:`cmbflow.paths.subject_export`) of every subject of
    ``originals`` (key -> original magnitude image), from the census table ``cmbs_table``."""
    cmbs = pd.read_csv(cmbs_table, sep="\t", dtype={"subject": str})
    for key, original in originals.items():
        found = write_subject_exports(cmbs, key, original, f"{variant}: CMBs of {dataset} sub-{key}",
                                      paths.subject_export(variant, dataset, key, "markups"),
                                      paths.subject_export(variant, dataset, key, "labels"))
        log.info("sub-%s: %d CMBs exported", key, found)
