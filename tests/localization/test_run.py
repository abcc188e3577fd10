import subprocess
import sys

import nibabel as nib
import numpy as np
import pandas as pd

from cmbflow.io.coords import voxel_to_world
from cmbflow.localization.run import localize_detections, run_localization

AFFINE = np.array([[1.0, 0, 0, -20], [0, 1.0, 0, -30], [0, 0, 2.0, -10], [0, 0, 0, 1]])  # voxel -> world mm
SHAPE = (40, 60, 10)


def _maps(tmp_path, key):
    """Atlas: lobar in the left half, deep in the right half, outside beyond j >= 50.
    The network agrees, except that it calls the deep half infratentorial."""
    atlas = np.zeros(SHAPE, np.uint8)
    atlas[:20, :50] = 1
    atlas[20:, :50] = 2
    network = np.where(atlas == 2, 3, atlas).astype(np.uint8)
    files = {}
    for name, data in (("atlas", atlas), ("network", network)):
        files[name] = str(tmp_path / f"sub-{key}_{name}.nii.gz")
        nib.save(nib.Nifti1Image(data, AFFINE), files[name])
    return files


def _detections(rows):
    """``rows``: (subject, voxel) -> a detection table with world mm centres."""
    world = voxel_to_world(AFFINE, np.array([v for _, v in rows], float))
    return pd.DataFrame({"subject": [s for s, _ in rows], "candidate": [f"{s}_{n:03d}" for n, (s, _) in enumerate(rows)],
                         "x": world[:, 0], "y": world[:, 1], "z": world[:, 2], "i": 0, "j": 0, "k": 0,
                         "score": [0.9, 0.8, 0.7, 0.6], "diameter_mm": 3.0})


def test_detections_get_both_regions_in_their_order_and_the_chosen_one_decides(tmp_path):
    subjects = {"001": _maps(tmp_path, "001"), "002": _maps(tmp_path, "002")}
    detections = _detections([("002", (5, 5, 5)), ("001", (30, 5, 5)), ("002", (5, 55, 5)), ("001", (5, 10, 2))])
    out = localize_detections(detections, subjects, "network")
    assert out["candidate"].tolist() == detections["candidate"].tolist()  # the detections' rows, in their order
    assert out["region_atlas"].tolist() == ["lobar", "deep", "outside", "lobar"]
    assert out["region_network"].tolist() == ["lobar", "infratentorial", "outside", "lobar"]
    assert out["region"].tolist() == out["region_network"].tolist()
    assert out["kept"].tolist() == [True, True, False, True]


def test_run_localization_writes_the_tables_and_the_census(tmp_path):
    subjects = {"001": _maps(tmp_path, "001"), "002": _maps(tmp_path, "002")}
    detections = _detections([("002", (5, 5, 5)), ("001", (30, 5, 5)), ("002", (5, 55, 5)), ("001", (5, 10, 2))])
    detections.to_csv(tmp_path / "detections.tsv", sep="\t", index=False)
    outputs = {name: str(tmp_path / "out" / f"{name}.tsv") for name in ("table", "cmbs", "counts")}
    tables = {key: str(tmp_path / "out" / "subjects" / f"sub-{key}_candidates.tsv") for key in subjects}
    run_localization(str(tmp_path / "detections.tsv"), subjects, "atlas", 0.0, 0.65, outputs, tables, "validation subjects")
    table = pd.read_csv(outputs["table"], sep="\t", dtype={"subject": str})
    assert table["region"].tolist() == ["lobar", "deep", "outside", "lobar"]
    assert len(pd.read_csv(tables["001"], sep="\t")) == 2
    counts = pd.read_csv(outputs["counts"], sep="\t", dtype={"subject": str})
    # score >= 0.65 and kept: 002 lobar (0.9), 001 deep (0.8); the outside 0.7 and the 0.6 are not CMBs
    assert counts.to_dict("records") == [
        {"subject": "001", "lobar": 0, "deep": 1, "infratentorial": 0, "total": 1, "threshold": 0.65, "threshold_source": "validation subjects"},
        {"subject": "002", "lobar": 1, "deep": 0, "infratentorial": 0, "total": 1, "threshold": 0.65, "threshold_source": "validation subjects"}]


def test_a_margin_keeps_a_candidate_just_beyond_the_brain_edge_and_not_one_farther_out(tmp_path):
    subjects = {"001": _maps(tmp_path, "001")}
    # the lobar region ends at j = 49 (world y = 19 mm); candidates 1.0 mm and 3.0 mm beyond it
    detections = _detections([("001", (5, 50, 5)), ("001", (5, 52, 5)), ("001", (5, 10, 5)), ("001", (5, 45, 5))])
    strict = localize_detections(detections, subjects, "atlas")
    assert strict["kept"].tolist() == [False, False, True, True]
    grown = localize_detections(detections, subjects, "atlas", margin_mm=1.0)
    assert grown["region"].tolist() == ["lobar", "outside", "lobar", "lobar"]


def test_localizing_candidates_loads_no_network_library():
    """The job that runs once per variant and dataset reads region maps only: it imports
    neither torch nor MONAI nor ANTs (each would add seconds to every such job)."""
    code = ("import sys, cmbflow.localization.run, cmbflow.logs, cmbflow.models.card; "
            "print(sorted(m for m in ('torch', 'monai', 'ants') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]", loaded
