"""Curves and summary numbers of matched candidates (:func:`cmbflow.evaluation.detection.match_candidates`).

* **FROC**: sensitivity against false positives per subject, one point per distinct score
  threshold. The **CPM** is the mean sensitivity at :data:`FP_LEVELS` on the curve linearly
  interpolated between its points, as LUNA16 and ``monai.metrics.compute_froc_score`` do.
  MONAI's ``compute_froc_curve_data`` skips the lowest score as a threshold; ours does not
  (the lowest-scoring candidates count), so the two agree once MONAI is given a sentinel
  false positive below every score (tests/evaluation/test_froc.py).
* **Bootstrap**: subjects resampled with replacement; 95 % bands of the interpolated FROC and
  an interval of the CPM.
* **Precision-recall**: recall is over all CMBs, found or not, so it ends below 1 where
  CMBs were missed; AP is the step-wise sum ``sum (R_n - R_n-1) P_n`` (scikit-learn's
  definition, which equals ``average_precision_score`` when every CMB is found).
* **Operating point**: on the validation (or calibration) subjects, the threshold at which
  the false positives per subject reach a target (``fp_rate``, default; stable with few
  CMBs, since false positives are plentiful) or the one with the highest F1 (``f1``).

Duplicates (extra hits on an already-found CMB) are neither true nor false positives.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

FP_LEVELS = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)  # false positives per subject of the CPM (LUNA16)


def _scored(matched: pd.DataFrame) -> pd.DataFrame:
    """True and false positives, best first (duplicates and hits of possible CMBs are neither)."""
    table = matched[matched["outcome"].isin(("tp", "fp"))]
    return table.sort_values("score", ascending=False, kind="stable")


def froc_curve(matched: pd.DataFrame, n_lesions: int, n_subjects: int) -> pd.DataFrame:
    """FROC points of candidates pooled over subjects (``score`` and ``outcome`` columns): a
    first point ``(0, 0)`` at threshold 1, then one row per distinct score (ties enter
    together) with ``threshold``, ``tp``, ``fp``, ``sensitivity``, ``fp_per_subject``."""
    if n_lesions <= 0 or n_subjects <= 0:
        raise ValueError(f"need CMBs and subjects, got {n_lesions} CMBs in {n_subjects} subjects")
    table = _scored(matched)
    tp = np.cumsum(table["outcome"].to_numpy() == "tp")
    fp = np.cumsum(table["outcome"].to_numpy() == "fp")
    points = pd.DataFrame({"threshold": table["score"].to_numpy(float), "tp": tp, "fp": fp})
    points = points.groupby("threshold", sort=False).last().reset_index()
    points = pd.concat([pd.DataFrame({"threshold": [1.0], "tp": [0], "fp": [0]}), points], ignore_index=True)
    points["sensitivity"] = points["tp"] / n_lesions
    points["fp_per_subject"] = points["fp"] / n_subjects
    return points


def sensitivity_at(points: pd.DataFrame, levels=FP_LEVELS) -> np.ndarray:
    """Sensitivity of a FROC (:func:`froc_curve`) at ``levels`` false positives per subject,
    linearly interpolated between points (the last sensitivity beyond the curve's end)."""
    return np.interp(np.asarray(levels, float), points["fp_per_subject"].to_numpy(float), points["sensitivity"].to_numpy(float))


def cpm(points: pd.DataFrame, levels=FP_LEVELS) -> float:
    """Competition performance metric: mean sensitivity at ``levels`` FPs per subject."""
    return curve_cpm(points["fp_per_subject"].to_numpy(float), points["sensitivity"].to_numpy(float), levels)


def curve_cpm(fp_rate: np.ndarray, sensitivity: np.ndarray, levels=FP_LEVELS) -> float:
    """:func:`cpm` of a curve given as arrays (``fp_per_subject``, ``sensitivity``)."""
    return float(np.mean(np.interp(np.asarray(levels, float), fp_rate, sensitivity)))


class SubjectResampler:
    """FROCs of subject draws with replacement, without pooling tables: each candidate (true
    and false positives of :func:`_scored`, best first) weighs as often as its subject was
    drawn, and the cumulative counts at each distinct score are those :func:`froc_curve` finds
    on the pooled table (exactly: integer counts, the same divisions). ~30x faster than
    concatenating the drawn subjects' rows per replicate."""

    def __init__(self, matched: pd.DataFrame, subjects: list[str]):
        table = _scored(matched)
        index = {str(key): i for i, key in enumerate(subjects)}
        self.n_subjects = len(subjects)
        self.scores = table["score"].to_numpy(float)
        self.subject = np.array([index.get(str(key), -1) for key in table["subject"]], dtype=int)
        self.tp = (table["outcome"].to_numpy() == "tp").astype(np.int64)
        self.fp = (table["outcome"].to_numpy() == "fp").astype(np.int64)

    def curve(self, counts: np.ndarray, n_lesions: int) -> tuple[np.ndarray, np.ndarray]:
        """``(fp_per_subject, sensitivity)`` points of the FROC of a draw: ``counts[i]`` is how
        often subject ``i`` was drawn, ``n_lesions`` the draw's CMBs."""
        weight = np.where(self.subject >= 0, counts[np.maximum(self.subject, 0)], 0)
        drawn = weight > 0
        scores = self.scores[drawn]
        tp = np.cumsum(weight[drawn] * self.tp[drawn])
        fp = np.cumsum(weight[drawn] * self.fp[drawn])
        last = np.append(scores[1:] != scores[:-1], True)  # the last row of each distinct score (ties enter together)
        fp_rate = np.concatenate([[0], fp[last]]) / self.n_subjects
        sensitivity = np.concatenate([[0], tp[last]]) / n_lesions
        return fp_rate, sensitivity


def subject_draws(lesions_per_subject: dict[str, int], n_boot: int, seed: int):
    """``n_boot`` subject-level bootstrap draws of the subjects (keys of ``lesions_per_subject``):
    ``(counts, n_lesions)`` with ``counts[i]`` the times subject ``i`` was drawn. A draw with no
    CMB is drawn again."""
    rng = np.random.default_rng(seed)
    per_subject = np.array(list(lesions_per_subject.values()), dtype=np.int64)
    made = 0
    while made < n_boot:
        counts = np.bincount(rng.choice(len(per_subject), size=len(per_subject), replace=True), minlength=len(per_subject))
        n_lesions = int(counts @ per_subject)
        if n_lesions == 0:
            continue
        made += 1
        yield counts, n_lesions


def bootstrap_froc(matched: pd.DataFrame, lesions_per_subject: dict[str, int], levels, n_boot: int = 1000,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Subject-level bootstrap of the FROC: ``(n_boot, len(levels))`` sensitivities at
    ``levels`` and ``(n_boot,)`` CPMs. Each replicate draws the subjects (keys of
    ``lesions_per_subject``) with replacement (:func:`subject_draws`)."""
    resampler = SubjectResampler(matched, list(lesions_per_subject))
    levels = np.asarray(levels, float)
    curves, cpms = [], []
    for counts, n_lesions in subject_draws(lesions_per_subject, n_boot, seed):
        fp_rate, sensitivity = resampler.curve(counts, n_lesions)
        curves.append(np.interp(levels, fp_rate, sensitivity))
        cpms.append(curve_cpm(fp_rate, sensitivity))
    return np.asarray(curves), np.asarray(cpms)


def pr_curve(matched: pd.DataFrame, n_lesions: int) -> pd.DataFrame:
    """Precision and recall at each distinct score threshold (``threshold``, ``tp``, ``fp``,
    ``precision``, ``recall``), recall over all ``n_lesions`` CMBs."""
    if n_lesions <= 0:
        raise ValueError("precision-recall needs at least one CMB")
    table = _scored(matched)
    tp = np.cumsum(table["outcome"].to_numpy() == "tp")
    fp = np.cumsum(table["outcome"].to_numpy() == "fp")
    points = pd.DataFrame({"threshold": table["score"].to_numpy(float), "tp": tp, "fp": fp})
    points = points.groupby("threshold", sort=False).last().reset_index()
    points["precision"] = points["tp"] / np.maximum(points["tp"] + points["fp"], 1)
    points["recall"] = points["tp"] / n_lesions
    return points


def average_precision(points: pd.DataFrame) -> float:
    """``sum (R_n - R_n-1) P_n`` over the points of :func:`pr_curve` (0 without candidates)."""
    recall = np.concatenate([[0.0], points["recall"].to_numpy(float)])
    return float(np.sum(np.diff(recall) * points["precision"].to_numpy(float)))


def metrics_at(matched: pd.DataFrame, n_lesions: int, n_subjects: int, threshold: float) -> dict[str, float]:
    """Counts and rates of the candidates scoring at least ``threshold``: ``tp``, ``fp``,
    ``fn``, ``sensitivity``, ``fp_per_subject``, ``precision``, ``f1`` (NaN where undefined)."""
    chosen = matched[matched["score"] >= threshold]
    tp = int((chosen["outcome"] == "tp").sum())
    fp = int((chosen["outcome"] == "fp").sum())
    sensitivity = tp / n_lesions if n_lesions else np.nan
    precision = tp / (tp + fp) if tp + fp else np.nan
    f1 = 2 * tp / (2 * tp + fp + (n_lesions - tp)) if n_lesions + fp else np.nan
    return {"tp": tp, "fp": fp, "fn": n_lesions - tp, "sensitivity": sensitivity,
            "fp_per_subject": fp / n_subjects if n_subjects else np.nan, "precision": precision, "f1": f1}


def choose_operating_point(matched: pd.DataFrame, n_lesions: int, n_subjects: int, fallback: float = 0.5,
                           criterion: str = "f1", fp_per_subject: float = 1.0) -> dict:
    """The operating threshold of ``matched`` (validation candidates) by ``criterion``:
    ``fp_rate`` (:func:`threshold_at_fp_rate`) or ``f1`` (below)."""
    if criterion == "fp_rate":
        return threshold_at_fp_rate(matched, n_lesions, n_subjects, fp_per_subject)
    if criterion != "f1":
        raise ValueError(f"operating point criterion must be 'fp_rate' or 'f1', not {criterion!r}")
    return _highest_f1(matched, n_lesions, n_subjects, fallback)


def threshold_at_fp_rate(matched: pd.DataFrame, n_lesions: int, n_subjects: int, fp_per_subject: float = 1.0) -> dict:
    """The lowest threshold keeping at most ``fp_per_subject`` false positives per subject on
    ``matched``: midway between the score of the first false positive beyond that budget and
    the next score above it (all candidates when the budget is never reached)."""
    table = _scored(matched)
    scores = table["score"].to_numpy(float)
    false = np.flatnonzero(table["outcome"].to_numpy() == "fp")
    budget = int(np.floor(fp_per_subject * n_subjects + 1e-9))
    if len(false) <= budget:
        threshold = float(scores.min()) if len(scores) else 0.0
    else:
        first_over = false[budget]
        above = scores[:first_over][scores[:first_over] > scores[first_over]]
        threshold = float((scores[first_over] + (above.min() if len(above) else 1.0)) / 2)
    return {"threshold": threshold, "criterion": f"at most {fp_per_subject:g} false positives per subject on the chosen subjects",
            **metrics_at(matched, n_lesions, n_subjects, threshold)}


def _highest_f1(matched: pd.DataFrame, n_lesions: int, n_subjects: int, fallback: float = 0.5) -> dict:
    """The score threshold with the highest F1 on ``matched`` (validation candidates).

    Among thresholds reaching that F1, the widest score gap is split in the middle: the
    threshold lies halfway between the lowest score kept and the next candidate below it,
    so that new data is not judged on the exact score of one validation candidate.
    Returns ``threshold`` and :func:`metrics_at` there; ``fallback`` without CMBs or candidates.
    """
    points = pr_curve(matched, n_lesions) if n_lesions and len(matched) else None
    if points is None or points.empty:
        return {"threshold": fallback, "criterion": "fallback: no CMB or no candidate in the validation subjects",
                **metrics_at(matched, n_lesions, n_subjects, fallback)}
    f1 = 2 * points["tp"] / (points["tp"] + points["fp"] + n_lesions)
    best = np.flatnonzero(np.isclose(f1, f1.max()))
    scores = points["threshold"].to_numpy(float)
    lower = np.append(scores[1:], 0.0)  # the next score below each threshold
    pick = best[np.argmax(scores[best] - lower[best])]
    threshold = float((scores[pick] + lower[pick]) / 2)
    return {"threshold": threshold, "criterion": "highest F1 on the validation subjects, midway in its score gap",
            **metrics_at(matched, n_lesions, n_subjects, threshold)}
