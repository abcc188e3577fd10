import numpy as np
import pandas as pd
import pytest

from cmbflow.evaluation.detection import SubjectTruth
from cmbflow.evaluation.subjects import (agreement, burden_category, centre_distance_f1, distribution,
                                         icc_absolute_agreement, subject_table, valdo_subject_f1)


def test_icc_matches_the_published_shrout_and_fleiss_example():
    """Shrout & Fleiss (1979), Table 2: 6 targets, 4 judges; ICC(2,1) = 0.29."""
    ratings = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]])
    assert icc_absolute_agreement(ratings) == pytest.approx(0.2898, abs=1e-4)
    assert icc_absolute_agreement(np.array([[0, 0], [3, 3], [7, 7]])) == 1.0
    # a constant offset is disagreement in absolute terms (a consistency ICC would say 1)
    assert icc_absolute_agreement(np.array([[0, 2], [3, 5], [7, 9]])) < 0.9


def test_burden_and_distribution_categories():
    assert burden_category([0, 1, 2, 4, 5, 10, 11, 40]).tolist() == [0, 1, 2, 2, 3, 3, 4, 4]
    assert distribution(pd.Series([], dtype=str)) == "none"
    assert distribution(pd.Series(["lobar", "lobar"])) == "strictly lobar"
    assert distribution(pd.Series(["deep", "infratentorial"])) == "deep or infratentorial"
    assert distribution(pd.Series(["lobar", "infratentorial"])) == "mixed"


def test_subject_table_counts_what_the_census_counts_and_agreement_reads_it():
    lesions = pd.DataFrame({"subject": ["a", "a", "a", "b"], "region": ["lobar", "deep", "lobar", "lobar"]})
    # a: 2 of its 3 CMBs found; b: one CMB and two detections; c: no CMB, one weak candidate below the threshold;
    # d: no CMB, one false positive
    matched = pd.DataFrame({"subject": ["a", "a", "a", "b", "b", "c", "d"],
                            "score": [0.9, 0.8, 0.1, 0.7, 0.6, 0.2, 0.55],
                            "region": ["lobar", "deep", "lobar", "lobar", "deep", "lobar", "infratentorial"]})
    table = subject_table(matched, lesions, ["a", "b", "c", "d"], threshold=0.5).set_index("subject")
    assert table["cmbs"].tolist() == [3, 1, 0, 0] and table["detected"].tolist() == [2, 2, 0, 1]
    assert table["difference"].tolist() == [-1, 1, 0, 1]
    assert table["best_score"].tolist() == [0.9, 0.7, 0.2, 0.55]
    assert table.loc["b", ["burden_true", "burden_detected"]].tolist() == ["1", "2-4"]
    assert table.loc["b", ["distribution_true", "distribution_detected"]].tolist() == ["strictly lobar", "mixed"]
    metrics = agreement(table.reset_index(), n_boot=200, seed=0)
    assert metrics["count_mae"] == 0.75 and metrics["count_bias"] == 0.25
    spread = np.std([-1, 1, 0, 1], ddof=1)
    assert metrics["count_loa_upper"] == pytest.approx(0.25 + 1.96 * spread)
    assert metrics["subject_sensitivity"] == 1.0 and metrics["subject_specificity"] == 0.5
    # subject scores: CMB subjects 0.9, 0.7 above both CMB-free ones (0.2, 0.55)
    assert metrics["subject_auc"] == 1.0
    assert metrics["subject_auc_lower"] <= metrics["subject_auc"] <= metrics["subject_auc_upper"]
    assert -1 <= metrics["burden_kappa"] < 1 and -1 <= metrics["distribution_kappa"] < 1
    assert np.isfinite(metrics["count_icc"])


def test_agreement_is_undefined_where_a_class_is_missing():
    table = subject_table(pd.DataFrame({"subject": ["a"], "score": [0.9], "region": ["lobar"]}),
                          pd.DataFrame({"subject": ["a"], "region": ["lobar"]}), ["a"], 0.5)
    metrics = agreement(table, n_boot=20)
    assert np.isnan(metrics["subject_auc"]) and np.isnan(metrics["subject_specificity"]) and np.isnan(metrics["count_icc"])
    assert np.isnan(metrics["burden_kappa"]) and metrics["count_mae"] == 0


def test_centre_distance_rules_count_in_millimetres_and_in_voxels():
    """On 0.5 x 0.5 x 3 mm voxels: 3 voxels through the slices are 9 mm (a voxel-rule hit,
    a miss in mm); 6 voxels in-plane are 3 mm (a miss by voxels, a hit in mm for a 4 mm CMB)."""
    affine = np.diag([0.5, 0.5, 3.0, 1.0])
    lesions = pd.DataFrame({"lesion": [1, 2], "x": [10.0, 30.0], "y": [10.0, 30.0], "z": [30.0, 30.0], "radius_mm": [2.0, 4.0]})
    truth = SubjectTruth(None, affine, lesions)
    voxels = np.array([[20, 20, 13], [66, 60, 10], [100, 100, 2]], float)  # near CMB 1 (through slices), CMB 2 (in-plane), nowhere
    candidates = pd.DataFrame({"subject": "s", "score": [0.9, 0.8, 0.7], "i": voxels[:, 0], "j": voxels[:, 1], "k": voxels[:, 2]})
    candidates[["x", "y", "z"]] = voxels * [0.5, 0.5, 3.0]
    f1 = centre_distance_f1(candidates, {"s": truth}, threshold=0.5, r_min_mm=1.5, max_voxels=5)
    # mm: CMB 2 hit (3 mm < 4 mm), CMB 1 missed, 2 FPs -> 2 / (2 + 2 + 1); voxels: CMB 1 hit, CMB 2 missed -> the same
    assert f1["f1_centre_mm"] == pytest.approx(2 / 5) and f1["valdo_f1"] == pytest.approx(2 / 5)
    wide = centre_distance_f1(candidates, {"s": truth}, threshold=0.5, r_min_mm=1.5, max_voxels=7)
    assert wide["valdo_f1"] == pytest.approx(4 / 5)  # both CMBs, one FP
    assert centre_distance_f1(candidates, {"s": truth}, 0.75, 1.5, 5)["valdo_f1"] == pytest.approx(2 / 4)
    no_grid = centre_distance_f1(candidates, {"s": SubjectTruth(None, None, lesions)}, 0.5, 1.5, 5)
    assert np.isnan(no_grid["valdo_f1"]) and no_grid["f1_centre_mm"] == pytest.approx(2 / 5)


def test_valdo_rule_matches_as_the_challenge_code_and_averages_over_subjects_with_cmbs():
    """Subject a: two candidates 1 and 2 voxels from its CMB (the nearer a TP, the other an FP, as
    VALDO's code has it; the mm rule counts no FP), one exactly 5 voxels from its second CMB (not
    less than 5: a miss). Subject b: CMBs, no candidate (F1 0). Subject c: no CMB, one candidate
    (no F1: left out of the mean)."""
    affine = np.diag([1.0, 1.0, 2.0, 1.0])

    def truth(centres):
        lesions = pd.DataFrame({"lesion": np.arange(1, len(centres) + 1), "radius_mm": 3.0})
        lesions[["x", "y", "z"]] = np.asarray(centres, float).reshape(-1, 3) if len(centres) else np.zeros((0, 3))
        return SubjectTruth(None, affine, lesions)

    truths = {"a": truth([[10, 10, 20], [40, 40, 20]]), "b": truth([[10, 10, 20]]), "c": truth([])}
    voxels = np.array([[11, 10, 10], [12, 10, 10], [45, 40, 10], [70, 70, 10]], float)
    candidates = pd.DataFrame({"subject": ["a", "a", "a", "c"], "score": 0.9, "i": voxels[:, 0], "j": voxels[:, 1],
                               "k": voxels[:, 2]})
    candidates[["x", "y", "z"]] = voxels * [1.0, 1.0, 2.0]
    f1 = centre_distance_f1(candidates, truths, threshold=0.5, r_min_mm=1.5, max_voxels=5)
    subject_a = 2 * 1 / (2 * 1 + 2 + 1)  # TP 1, FP 2 (the second candidate on CMB 1, the one 5 voxels off), FN 1
    assert f1["valdo_f1"] == pytest.approx((subject_a + 0.0) / 2)
    assert np.isnan(valdo_subject_f1(candidates.iloc[3:], truths["c"], 5))
    wider = centre_distance_f1(candidates, truths, 0.5, 1.5, 5.01)
    assert wider["valdo_f1"] == pytest.approx((2 * 2 / (2 * 2 + 1 + 0) + 0.0) / 2)
    # mm rule (3 mm radius), pooled: a's CMB 1 hit twice counts once, no FP; the candidate 5 mm off CMB 2 and c's are FPs
    assert f1["f1_centre_mm"] == pytest.approx(2 * 1 / (2 * 1 + 2 + 3 - 1))


def test_the_bootstrap_subject_aucs_are_scikit_learns_with_ties_and_one_sided_draws():
    from sklearn.metrics import roc_auc_score

    from cmbflow.evaluation.subjects import _bootstrap_aucs

    rng = np.random.default_rng(0)
    has_cmb = np.array([True, False, True, True, False, False, True])
    score = np.array([0.9, 0.1, 0.5, 0.5, 0.5, 0.0, 0.2])  # ties across the classes
    draws = np.array([rng.integers(0, len(score), len(score)) for _ in range(300)] + [[0, 2, 3, 3, 0, 6, 2]])
    aucs = _bootstrap_aucs(has_cmb, score, draws)
    expected = [roc_auc_score(has_cmb[d], score[d]) if 0 < has_cmb[d].sum() < len(d) else np.nan for d in draws]
    assert np.allclose(aucs, expected, equal_nan=True)
    assert np.isnan(aucs[-1]) and np.isfinite(aucs).sum() > 250  # a draw of CMB subjects only has no AUC
