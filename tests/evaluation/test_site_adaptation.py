"""The operating point's label-free adaptation to a site (cmbflow.evaluation.site_adaptation)."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, logit

from cmbflow.evaluation.site_adaptation import adapt_threshold, background_score, write_adapted_operating_point
from cmbflow.io.nifti import save_volume

INFERENCE = {"score_threshold": 0.02, "nms_iou": 0.1, "max_candidates": 200, "brain_margin_mm": 10.0, "tta_flips": []}
OPTIONS = {"site_adaptation": "background", "background_ranks": [3, 5], "max_logit_shift": 1.5}


def test_background_score_reads_the_deep_ranks_pads_with_the_floor_and_takes_the_median_over_subjects():
    first = np.array([0.9, 0.1, 0.8, 0.3, 0.2, 0.25])  # best first: 0.9 0.8 0.3 0.25 0.2 0.1; ranks 3-5: 0.3 0.25 0.2
    short = np.array([0.7, 0.6, 0.5])  # ranks 3-5: 0.5 and two missing -> floor
    assert background_score([first], (3, 5), floor=0.02) == pytest.approx(0.25)
    assert background_score([short], (3, 5), floor=0.02) == pytest.approx(0.02)
    assert background_score([first, short, first], (3, 5), floor=0.02) == pytest.approx(0.25)
    assert background_score([], (3, 5), floor=0.05) == 0.05


def test_adapt_threshold_moves_the_logit_by_the_background_shift_and_clips_it():
    threshold, shift = adapt_threshold(0.45, home_level=0.2, site_level=expit(logit(0.2) - 0.8), max_logit_shift=1.5)
    assert shift == pytest.approx(-0.8) and threshold == pytest.approx(expit(logit(0.45) - 0.8))
    assert adapt_threshold(0.45, 0.2, 0.2, 1.5) == (pytest.approx(0.45), 0.0)
    # a site with no background at all (its level at the search's floor) moves at most max_logit_shift
    threshold, shift = adapt_threshold(0.45, 0.2, 0.0, 1.5)
    assert shift == -1.5 and threshold == pytest.approx(expit(logit(0.45) - 1.5))
    assert adapt_threshold(0.45, 0.2, 0.99, 0.5)[1] == 0.5


def _site(tmp_path, shift: float):
    """Two subjects' candidate tables (world mm) and brain masks: five candidates inside the
    brain with scores of a home background moved by ``shift`` in logit, and confident ones
    outside the brain (the skull band), which the adaptation must not read."""
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    brain = np.zeros((10, 10, 10), np.uint8)
    brain[2:8, 2:8, 2:8] = 1
    home = np.array([0.9, 0.6, 0.3, 0.25, 0.2])
    rows, masks = [], {}
    for key in ("001", "002"):
        masks[key] = str(tmp_path / f"sub-{key}_brainmask.nii.gz")
        save_volume(masks[key], brain, affine)
        for n, score in enumerate(expit(logit(home) + shift)):
            rows.append({"subject": key, "x": 10.0, "y": 10.0 + n, "z": 10.0, "score": float(score)})
        rows += [{"subject": key, "x": 0.0, "y": 0.0, "z": 0.0, "score": 0.95}] * 3  # outside the brain
    table = tmp_path / "detections.tsv"
    pd.DataFrame(rows).sort_values("score", ascending=False).to_csv(table, sep="\t", index=False)
    return table, masks


def test_a_site_whose_scores_sit_lower_gets_a_threshold_lower_by_as_much(tmp_path):
    point = tmp_path / "operating_point.json"
    point.write_text(json.dumps({"threshold": 0.45, "criterion": "fp_rate", "subjects": ["home/007"], "source": "validation",
                                 "background_score": 0.25, "background_ranks": [3, 5], "inference": INFERENCE}))
    table, masks = _site(tmp_path, shift=-0.7)
    record = write_adapted_operating_point(point, table, masks, OPTIONS, INFERENCE, "far_site", tmp_path / "out.json")
    assert record["adaptation"]["background_score"] == pytest.approx(expit(logit(0.25) - 0.7))
    assert record["adaptation"]["logit_shift"] == pytest.approx(-0.7)
    assert record["threshold"] == pytest.approx(expit(logit(0.45) - 0.7)) and record["model_threshold"] == 0.45
    assert "adapted to far_site without labels" in record["source"] and record["adaptation"]["subjects"] == ["001", "002"]
    assert json.loads((tmp_path / "out.json").read_text()) == json.loads(json.dumps(record))
    # the home site itself (same background): the model's threshold
    same_table, _ = _site(tmp_path, shift=0.0)
    same = write_adapted_operating_point(point, same_table, masks, OPTIONS, INFERENCE, "home", tmp_path / "same.json")
    assert same["threshold"] == pytest.approx(0.45)


def test_a_point_without_a_background_score_is_used_as_it_is_and_says_so(tmp_path, caplog):
    point = tmp_path / "operating_point.json"
    point.write_text(json.dumps({"threshold": 0.45, "criterion": "fp_rate", "subjects": [], "source": "validation"}))
    table, masks = _site(tmp_path, shift=-0.7)
    record = write_adapted_operating_point(point, table, masks, OPTIONS, INFERENCE, "far_site", tmp_path / "out.json")
    assert record["threshold"] == 0.45 and "not adapted to far_site" in record["source"]
    assert "rerun the choose_operating_point rule" in caplog.text


def test_adapting_the_operating_point_loads_no_network_library():
    """The job that runs once per variant and external site reads candidate tables and brain
    masks only: it imports neither torch nor MONAI nor ANTs (each would add seconds to every such job)."""
    code = ("import sys, cmbflow.evaluation.site_adaptation, cmbflow.logs; "
            "print(sorted(m for m in ('torch', 'monai', 'ants') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]", loaded
