import numpy as np
import pandas as pd
import pytest
from monai.metrics import compute_fp_tp_probs_nd, compute_froc_curve_data, compute_froc_score
from sklearn.metrics import average_precision_score

from cmbflow.evaluation.detection import HitRule, match_candidates
from cmbflow.evaluation.froc import (FP_LEVELS, average_precision, bootstrap_froc, choose_operating_point, cpm, froc_curve,
                                     metrics_at, pr_curve, sensitivity_at)


def _matched(outcomes, scores, subjects=None):
    return pd.DataFrame({"score": scores, "outcome": outcomes, "subject": subjects or ["a"] * len(scores)})


def test_froc_counts_false_positives_per_subject_and_skips_duplicates():
    matched = _matched(["tp", "fp", "duplicate", "fp", "tp", "fp"], [0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    points = froc_curve(matched, n_lesions=4, n_subjects=2)
    assert points["sensitivity"].tolist() == [0.0, 0.25, 0.25, 0.25, 0.5, 0.5]
    assert points["fp_per_subject"].tolist() == [0.0, 0.0, 0.5, 1.0, 1.0, 1.5]
    # interpolated between points: at 0.25 FPs per subject, halfway from (0, 0.25) to (0.5, 0.25)
    assert sensitivity_at(points, [0.25, 1.25, 8.0]).tolist() == [0.25, 0.5, 0.5]
    with pytest.raises(ValueError):
        froc_curve(matched, n_lesions=0, n_subjects=2)


def test_cpm_by_hand():
    matched = _matched(["tp", "fp", "tp", "fp", "fp"], [0.9, 0.8, 0.7, 0.6, 0.5])
    points = froc_curve(matched, n_lesions=2, n_subjects=3)  # (0,0) (0,.5) (1/3,.5) (1/3,1) (2/3,1) (1,1)
    assert sensitivity_at(points, FP_LEVELS).tolist() == [0.5, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0]
    assert cpm(points) == pytest.approx(6 / 7)
    # between points the curve is linear: two FPs of one subject before the second CMB
    slow = froc_curve(_matched(["tp", "fp", "fp", "tp"], [0.9, 0.8, 0.7, 0.6]), n_lesions=2, n_subjects=1)
    assert sensitivity_at(slow, [1.0, 1.5, 2.0]).tolist() == [0.5, 0.5, 1.0]  # at 2 FPs the second CMB is in


def _random_case(seed):
    """Three subjects with labelled CMBs and random candidates on a small grid."""
    rng = np.random.default_rng(seed)
    subjects = []
    for s in range(3):
        labels = np.zeros((30, 30, 12), np.int32)
        for label in range(1, rng.integers(2, 5)):
            c = rng.integers(3, 27, 2)
            labels[c[0] - 1:c[0] + 1, c[1] - 1:c[1] + 1, 5:7] = label
        n = 25
        coords = np.column_stack([rng.integers(0, 30, n), rng.integers(0, 30, n), rng.integers(0, 12, n)])
        # a few candidates right on CMBs, with high scores
        on = np.argwhere(labels > 0)[rng.choice(int((labels > 0).sum()), 4)]
        coords = np.vstack([coords, on])
        scores = np.round(rng.uniform(0.05, 0.95, len(coords)), 6)
        subjects.append((labels, coords, scores))
    return subjects


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cpm_equals_monai_froc_score(seed):
    subjects = _random_case(seed)
    fp_all, tp_all, targets, tables = [], [], 0, []
    for n, (labels, coords, scores) in enumerate(subjects):
        fp, tp, count = compute_fp_tp_probs_nd(scores, coords, labels)
        fp_all.append(fp)
        tp_all.append(tp)
        targets += count
        candidates = pd.DataFrame({"i": coords[:, 0], "j": coords[:, 1], "k": coords[:, 2], "score": scores})
        tables.append(match_candidates(candidates, labels, HitRule.defaults(dilation_voxels=0)).assign(subject=str(n)))
    # MONAI skips the lowest score as a threshold: a sentinel false positive at 0 makes it count every candidate
    fp_probs = np.concatenate(fp_all + [np.zeros(1, np.float32)])
    fps, sensitivity = compute_froc_curve_data(fp_probs, np.concatenate(tp_all), targets, len(subjects))
    monai_cpm = compute_froc_score(fps, sensitivity, FP_LEVELS)
    points = froc_curve(pd.concat(tables, ignore_index=True), targets, len(subjects))
    assert cpm(points) == pytest.approx(monai_cpm, abs=1e-6)


def test_average_precision_equals_scikit_learn_when_every_cmb_is_found():
    outcomes = ["tp", "fp", "tp", "duplicate", "fp", "tp", "fp"]
    scores = [0.95, 0.9, 0.8, 0.75, 0.6, 0.5, 0.3]
    matched = _matched(outcomes, scores)
    points = pr_curve(matched, n_lesions=3)
    kept = matched[matched["outcome"] != "duplicate"]
    assert average_precision(points) == pytest.approx(average_precision_score(kept["outcome"] == "tp", kept["score"]))
    # a missed CMB caps recall below 1 and lowers AP by its share
    assert average_precision(pr_curve(matched, n_lesions=4)) == pytest.approx(0.75 * average_precision(points))


def test_metrics_at_a_threshold():
    matched = _matched(["tp", "fp", "tp", "fp"], [0.9, 0.8, 0.4, 0.3])
    m = metrics_at(matched, n_lesions=3, n_subjects=2, threshold=0.5)
    assert (m["tp"], m["fp"], m["fn"]) == (1, 1, 2)
    assert m["precision"] == 0.5 and m["sensitivity"] == pytest.approx(1 / 3) and m["fp_per_subject"] == 0.5
    assert m["f1"] == pytest.approx(2 * 0.5 * (1 / 3) / (0.5 + 1 / 3))


def test_operating_point_maximises_f1_midway_in_the_score_gap():
    matched = _matched(["tp", "tp", "fp", "tp", "fp", "fp"], [0.9, 0.8, 0.7, 0.4, 0.3, 0.2])
    point = choose_operating_point(matched, n_lesions=3, n_subjects=1)
    # F1 at 0.8: 2*2/(2+0+3)=0.8; at 0.4: 2*3/(3+1+3)=0.857 -> best at 0.4, midway to 0.3
    assert point["threshold"] == pytest.approx(0.35)
    assert (point["tp"], point["fp"]) == (3, 1)
    assert choose_operating_point(matched.iloc[:0], 0, 1, fallback=0.42)["threshold"] == 0.42


def test_bootstrap_band_contains_the_curve_and_is_reproducible():
    matched = _matched(["tp", "fp", "tp", "fp", "tp", "fp"], [0.9, 0.8, 0.7, 0.6, 0.5, 0.4], ["a", "a", "b", "b", "c", "c"])
    lesions = {"a": 1, "b": 2, "c": 1}
    curves, cpms = bootstrap_froc(matched, lesions, FP_LEVELS, n_boot=200, seed=3)
    again, _ = bootstrap_froc(matched, lesions, FP_LEVELS, n_boot=200, seed=3)
    assert curves.shape == (200, len(FP_LEVELS)) and np.array_equal(curves, again)
    point = cpm(froc_curve(matched, 4, 3))
    assert np.percentile(cpms, 2.5) <= point <= np.percentile(cpms, 97.5)
    assert np.percentile(cpms, 97.5) > np.percentile(cpms, 2.5)  # subjects differ: the interval is not a point


def test_a_resampled_froc_equals_the_froc_of_the_pooled_draw():
    """The bootstrap weighs each subject's candidates by how often it was drawn; the curve
    must be the one froc_curve finds on the drawn subjects' rows pooled (ties, duplicates,
    a subject drawn twice, one not drawn, a candidate of a subject not scored)."""
    from cmbflow.evaluation.froc import SubjectResampler

    matched = _matched(["tp", "fp", "duplicate", "fp", "tp", "fp", "tp", "fp", "fp", "tp"],
                       [0.9, 0.8, 0.8, 0.8, 0.6, 0.6, 0.5, 0.3, 0.95, 0.7], ["a", "b", "a", "c", "b", "a", "c", "b", "x", "d"])
    counts = {"a": 2, "b": 1, "c": 1, "d": 0}
    pooled = pd.concat([matched[matched["subject"] == key] for key, n in counts.items() for _ in range(n)])
    expected = froc_curve(pooled, n_lesions=5, n_subjects=4)
    assert len(expected) == 6  # (0, 0) and 5 distinct scores: ties across subjects at 0.8 and 0.6 enter together
    fp_rate, sensitivity = SubjectResampler(matched, list(counts)).curve(np.array(list(counts.values())), n_lesions=5)
    assert fp_rate.tolist() == expected["fp_per_subject"].tolist()
    assert sensitivity.tolist() == expected["sensitivity"].tolist()


def test_operating_point_at_a_false_positive_budget():
    from cmbflow.evaluation.froc import threshold_at_fp_rate

    # 2 subjects, budget 1 FP per subject: the third FP (score 0.3) is the first beyond it
    matched = pd.DataFrame({"score": [0.9, 0.8, 0.7, 0.6, 0.5, 0.3, 0.2], "outcome": ["tp", "fp", "tp", "fp", "tp", "fp", "fp"]})
    point = threshold_at_fp_rate(matched, n_lesions=4, n_subjects=2, fp_per_subject=1.0)
    assert point["threshold"] == pytest.approx(0.4) and point["fp"] == 2 and point["tp"] == 3
    assert threshold_at_fp_rate(matched, 4, 2, fp_per_subject=5.0)["threshold"] == pytest.approx(0.2)  # never reached
