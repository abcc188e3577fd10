"""Markers as raters save them in 3D Slicer: markups JSON and fiducial CSV, in LPS or RAS,
read as world mm RAS+ like our own table; what is not a CMB point is skipped and said so."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from cmbflow.io.annotations import read_markers
from cmbflow.io.nifti import InputError

RAS = np.array([[10.5, -20.0, 30.25], [-4.0, 5.5, -6.0]])


def _markups(path, positions, frame="LPS", extra=()):
    points = [{"id": str(n), "label": f"F-{n}", "position": list(p), "positionStatus": "defined"} for n, p in enumerate(positions)]
    path.write_text(json.dumps({"@schema": "markups-schema-v1.0.3.json#", "markups": [
        {"type": "Fiducial", "name": "CMB", "coordinateSystem": frame, "coordinateUnits": "mm", "controlPoints": points},
        *extra]}))
    return path


@pytest.mark.parametrize("frame, stored", [("LPS", RAS * [-1, -1, 1]), ("RAS", RAS)])
def test_slicer_markups_json_in_either_frame_reads_as_ras(tmp_path, frame, stored):
    table = read_markers(_markups(tmp_path / "m.mrk.json", stored, frame))
    np.testing.assert_allclose(table[["x", "y", "z"]].to_numpy(), RAS)


def test_lines_and_undefined_points_are_skipped_with_a_warning(tmp_path, caplog):
    line = {"type": "Line", "name": "diameter", "coordinateSystem": "LPS", "controlPoints": [{"position": [0, 0, 0]}] * 2}
    path = _markups(tmp_path / "m.mrk.json", RAS * [-1, -1, 1], extra=[line])
    document = json.loads(path.read_text())
    document["markups"][0]["controlPoints"].append({"id": "9", "position": [0, 0, 0], "positionStatus": "undefined"})
    path.write_text(json.dumps(document))
    with caplog.at_level(logging.WARNING):
        table = read_markers(path)
    np.testing.assert_allclose(table[["x", "y", "z"]].to_numpy(), RAS)
    assert "Line markup 'diameter' (2 points) skipped" in caplog.text and "1 point(s) of 'CMB' skipped" in caplog.text


@pytest.mark.parametrize("header, stored", [("# CoordinateSystem = LPS", RAS * [-1, -1, 1]), ("# CoordinateSystem = 0", RAS),
                                            ("", RAS)])  # 0: RAS; no header (Slicer before 4.11): RAS
def test_slicer_fcsv_reads_as_ras(tmp_path, header, stored):
    rows = "".join(f"vtkMRMLMarkupsFiducialNode_{n},{x},{y},{z},0,0,0,1,1,1,0,F-{n},,\n" for n, (x, y, z) in enumerate(stored))
    path = tmp_path / "m.fcsv"
    path.write_text(f"# Markups fiducial file version = 4.11\n{header}\n"
                    "# columns = id,x,y,z,ow,ox,oy,oz,vis,sel,lock,label,desc,associatedNodeID\n" + rows)
    np.testing.assert_allclose(read_markers(path)[["x", "y", "z"]].to_numpy(), RAS)


def test_an_empty_point_list_is_a_subject_without_cmbs_and_a_broken_file_is_an_error(tmp_path):
    assert read_markers(_markups(tmp_path / "empty.mrk.json", [])).empty
    (tmp_path / "bad.mrk.json").write_text('{"markups": 3}')
    with pytest.raises(InputError, match=r"bad.mrk.json: not a Slicer markups file.*\.tsv with columns x y z"):
        read_markers(tmp_path / "bad.mrk.json")
    with pytest.raises(InputError, match=r"IJK.*world mm"):
        read_markers(_markups(tmp_path / "ijk.mrk.json", RAS, frame="IJK"))


def test_ratings_read_as_mars_words_and_an_unknown_one_is_definite_with_a_warning(tmp_path, caplog):
    path = tmp_path / "markers.tsv"
    path.write_text("x\ty\tz\trating\n1\t2\t3\tDefinite\n4\t5\t6\tpossible\n7\t8\t9\tcertain\n1\t1\t1\tUncertain\n2\t2\t2\t\n")
    assert read_markers(path)["rating"].tolist() == ["definite", "possible", "definite", "possible", "definite"]
    assert "not a CMB rating" not in caplog.text
    path.write_text("x\ty\tz\trating\n1\t2\t3\tmaybe\n4\t5\t6\tpossible\n")
    assert read_markers(path)["rating"].tolist() == ["definite", "possible"]
    assert "rating ['maybe'] is not a CMB rating" in caplog.text and "scored as definite" in caplog.text


@pytest.mark.parametrize("text", ["x,y,z,radius_mm\n1,2,3,1.5\n-4.5,2,3,2\n", "X; Y; Z; radius_mm\n1; 2; 3; 1.5\n-4.5; 2; 3; 2\n",
                                  "x y z radius_mm\n1 2 3 1.5\n-4.5 2 3 2\n"])
def test_a_spreadsheet_csv_under_the_tsv_name_is_read_with_a_warning(tmp_path, caplog, text):
    path = tmp_path / "markers.tsv"
    path.write_text(text)
    table = read_markers(path)
    assert table[["x", "y", "z", "radius_mm"]].to_numpy().tolist() == [[1, 2, 3, 1.5], [-4.5, 2, 3, 2]]
    assert "not tab-separated" in caplog.text
