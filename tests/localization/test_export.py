"""Markups and label maps for review in Slicer / ITK-SNAP, on an oblique LAS scan."""

import json

import jsonschema
import nibabel as nib
import numpy as np
import pandas as pd

from cmbflow.io.coords import lps_to_ras, voxel_to_world, world_to_voxel
from cmbflow.io.nifti import save_volume
from cmbflow.localization.export import label_map, slicer_markups, write_subject_exports

_NUMBERS = {"type": "array", "items": {"type": "number"}}
# The constraints of Slicer's published markups schema (markups-schema-v1.0.3.json, Slicer's
# Modules/Loadable/Markups/Resources/Schema) on what we write, restated here: the tests run
# without network and no package ships the schema file.
MARKUPS_SCHEMA_V103 = {
    "type": "object", "required": ["@schema", "markups"],
    "properties": {
        "@schema": {"type": "string"},
        "markups": {"type": "array", "items": {
            "type": "object", "required": ["type"],
            "properties": {
                "type": {"enum": ["Fiducial", "Line", "Angle", "Curve", "ClosedCurve", "Plane", "ROI"]},
                "name": {"type": "string"}, "coordinateSystem": {"enum": ["LPS", "RAS"]},
                "coordinateUnits": {"enum": ["mm", "um"]}, "locked": {"type": "boolean"}, "labelFormat": {"type": "string"},
                "controlPoints": {"type": "array", "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"}, "label": {"type": "string"}, "description": {"type": "string"},
                        "associatedNodeID": {"type": "string"},
                        "position": {**_NUMBERS, "minItems": 3, "maxItems": 3},
                        "orientation": {**_NUMBERS, "minItems": 9, "maxItems": 9},
                        "selected": {"type": "boolean"}, "locked": {"type": "boolean"}, "visibility": {"type": "boolean"},
                        "positionStatus": {"enum": ["undefined", "preview", "defined"]}}}}}}}}}


def _las_scan(tmp_path):
    """An oblique LAS-stored scan (0.9 x 0.9 x 2.5 mm, tilted 10 degrees)."""
    tilt = np.deg2rad(10.0)
    rotation = np.array([[1, 0, 0], [0, np.cos(tilt), -np.sin(tilt)], [0, np.sin(tilt), np.cos(tilt)]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([-0.9, 0.9, 2.5])
    affine[:3, 3] = [20.0, -15.0, -20.0]
    path = tmp_path / "sub-001_part-mag_swi.nii.gz"
    save_volume(path, np.ones((48, 40, 20), np.float32), affine)
    return str(path), affine


def _census(affine):
    world = voxel_to_world(affine, np.array([[30.2, 17.6, 9.3], [10.0, 30.0, 4.0]]))
    return pd.DataFrame({"subject": "001", "candidate": ["001_000", "001_003"], "x": world[:, 0], "y": world[:, 1],
                         "z": world[:, 2], "diameter_mm": [6.0, 0.5], "score": [0.91, 0.55], "region": ["lobar", "deep"]})


def test_markups_follow_slicers_schema_and_their_positions_round_trip_to_the_census(tmp_path):
    original, affine = _las_scan(tmp_path)
    cmbs = _census(affine)
    markups, labels = tmp_path / "out/sub-001.mrk.json", tmp_path / "out/sub-001_dseg.nii.gz"
    assert write_subject_exports(cmbs, "001", original, "rpn: CMBs of sub-001", str(markups), str(labels)) == 2
    content = json.loads(markups.read_text())
    jsonschema.validate(content, MARKUPS_SCHEMA_V103)
    markup = content["markups"][0]
    assert markup["type"] == "Fiducial" and markup["coordinateSystem"] == "LPS" and markup["coordinateUnits"] == "mm"
    points = markup["controlPoints"]
    assert [p["label"] for p in points] == ["CMB 1", "CMB 2"] and points[0]["description"].startswith("lobar; score 0.910")
    ras = lps_to_ras(np.array([p["position"] for p in points]))
    np.testing.assert_allclose(ras, cmbs[["x", "y", "z"]].to_numpy(), atol=0.01)  # mm


def test_the_label_map_marks_each_cmb_on_the_original_grid(tmp_path):
    original, affine = _las_scan(tmp_path)
    cmbs = _census(affine)
    labels_path = tmp_path / "sub-001_dseg.nii.gz"
    write_subject_exports(cmbs, "001", original, "rpn", str(tmp_path / "m.mrk.json"), str(labels_path))
    image = nib.load(labels_path)
    labels = np.asarray(image.dataobj)
    assert image.shape == (48, 40, 20) and np.allclose(image.affine, affine) and labels.dtype == np.int16
    centres = np.rint(world_to_voxel(affine, cmbs[["x", "y", "z"]].to_numpy())).astype(int)
    assert [labels[tuple(c)] for c in centres] == [1, 2]
    # CMB 1: a 6 mm ball, every voxel within 3 mm of its centre; CMB 2 (0.5 mm) its nearest voxel
    grid = np.indices(labels.shape).reshape(3, -1).T
    distance = np.linalg.norm(voxel_to_world(affine, grid) - cmbs[["x", "y", "z"]].to_numpy()[0], axis=1)
    np.testing.assert_array_equal(labels.reshape(-1) == 1, distance <= 3.0)
    assert (labels == 2).sum() == 1


def test_a_subject_without_cmbs_gets_an_empty_list_and_an_empty_map(tmp_path):
    original, affine = _las_scan(tmp_path)
    cmbs = _census(affine).assign(subject="002")
    markups = tmp_path / "sub-001.mrk.json"
    assert write_subject_exports(cmbs, "001", original, "rpn", str(markups), str(tmp_path / "l.nii.gz")) == 0
    content = json.loads(markups.read_text())
    jsonschema.validate(content, MARKUPS_SCHEMA_V103)
    assert content["markups"][0]["controlPoints"] == []
    assert not np.asarray(nib.load(tmp_path / "l.nii.gz").dataobj).any()


def test_a_better_cmb_keeps_the_voxels_where_balls_overlap():
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    cmbs = pd.DataFrame({"x": [10.0, 12.0], "y": [10.0, 10.0], "z": [10.0, 10.0], "diameter_mm": [4.0, 4.0]})
    labels = label_map(cmbs, affine, (20, 20, 20))
    assert labels[11, 10, 10] == 1 and labels[13, 10, 10] == 2 and labels[12, 10, 10] == 1
    assert slicer_markups(cmbs.iloc[:0], "none")["markups"][0]["controlPoints"] == []
