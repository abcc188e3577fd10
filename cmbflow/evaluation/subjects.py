"""Subject-level agreement: what a clinician reads per patient, scored against the annotations.

Per subject, the detected count is the census count (kept candidates scoring at least the
operating threshold, as :func:`cmbflow.localization.census.census` counts them) and the subject
score is its best candidate's score. From those, per variant x dataset:

* **has >= 1 CMB**: ROC AUC of the subject score (95 % subject-bootstrap interval), and the
  sensitivity and specificity of "at least one CMB detected" at the operating point;
* **count agreement**: mean absolute count difference (VALDO's "absolute count difference"),
  bias and 95 % limits of agreement (Bland-Altman) and ICC(A,1);
* **MARS categories**: weighted Cohen's kappa of the burden category (0, 1, 2-4, 5-10, > 10
  CMBs; linear weights: the categories are ordered) and Cohen's kappa of the distribution
  (none, strictly lobar, deep or infratentorial only, mixed);
* **lesion F1 by centre distance**: ``f1_centre_mm`` (pooled over the dataset) matches a
  candidate to a CMB whose centre lies within ``max(radius, r_min_mm)`` millimetres (world mm);
  ``valdo_f1`` follows the matching and averaging of the VALDO challenge's evaluation code
  (``compare_segmentations.py`` / ``PairwiseMeasures`` of "Where is VALDO?", task microbleeds):
  per subject, each candidate goes to its nearest CMB when their centres are less than
  ``max_voxels`` apart in voxel indices of the original image; of the candidates that go to
  one CMB the nearest is a true positive and the others false positives; F1 = 2 TP / (2 TP + FP
  + FN); the mean over the subjects that have CMBs (a subject without CMBs has no F1 there). The
  distance the challenge used is a command-line argument of that code, not written in it, so
  here it is a setting (``evaluation.valdo_distance_voxels``).

ICC(A,1) is written out here (McGraw & Wong 1996, two-way, absolute agreement, single
measures, = Shrout & Fleiss ICC(2,1)): it is three lines of ANOVA, and the packages that have
it (pingouin) would add a dependency tree for one formula. AUC and kappa are scikit-learn's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.metrics import cohen_kappa_score, roc_auc_score

from cmbflow.evaluation.detection import HitRule, SubjectTruth, definite_lesions, match_candidates
from cmbflow.io.coords import world_to_voxel

BURDEN_EDGES = (0, 1, 2, 5, 11)  # lower bounds of the categories 0, 1, 2-4, 5-10, > 10 CMBs
BURDEN_NAMES = ("0", "1", "2-4", "5-10", ">10")
DISTRIBUTIONS = ("none", "strictly lobar", "deep or infratentorial", "mixed")
SUBJECT_COLUMNS = ["subject", "cmbs", "detected", "difference", "best_score", "burden_true", "burden_detected",
                   "distribution_true", "distribution_detected"]


def burden_category(count) -> np.ndarray:
    """Index into :data:`BURDEN_NAMES` of each CMB count."""
    return np.searchsorted(BURDEN_EDGES, np.asarray(count), side="right") - 1


def distribution(regions: pd.Series) -> str:
    """MARS distribution of one subject's CMB ``regions`` (lobar / deep / infratentorial)."""
    present = set(regions)
    if not present:
        return "none"
    if present == {"lobar"}:
        return "strictly lobar"
    return "mixed" if "lobar" in present else "deep or infratentorial"


def subject_table(matched: pd.DataFrame, lesions: pd.DataFrame, subjects: list[str], threshold: float) -> pd.DataFrame:
    """One row per subject of ``subjects`` (:data:`SUBJECT_COLUMNS`): true and detected counts
    from ``lesions`` (``subject``, ``region``) and ``matched`` candidates (``subject``, ``score``,
    ``region``) scoring at least ``threshold``; ``best_score`` 0 without candidates."""
    rows = []
    for key in subjects:
        truth = lesions[lesions["subject"].astype(str) == str(key)]
        candidates = matched[matched["subject"].astype(str) == str(key)]
        found = candidates[candidates["score"] >= threshold]
        rows.append({"subject": str(key), "cmbs": len(truth), "detected": len(found),
                     "best_score": float(candidates["score"].max()) if len(candidates) else 0.0,
                     "distribution_true": distribution(truth["region"].dropna()),
                     "distribution_detected": distribution(found["region"].dropna() if "region" in found else pd.Series(dtype=str))})
    table = pd.DataFrame(rows, columns=[c for c in SUBJECT_COLUMNS if c not in ("difference", "burden_true", "burden_detected")])
    table["difference"] = table["detected"] - table["cmbs"]
    table["burden_true"] = [BURDEN_NAMES[n] for n in burden_category(table["cmbs"].to_numpy(int))]
    table["burden_detected"] = [BURDEN_NAMES[n] for n in burden_category(table["detected"].to_numpy(int))]
    return table[SUBJECT_COLUMNS]


def icc_absolute_agreement(ratings: np.ndarray) -> float:
    """ICC(A,1) of ``ratings`` (subjects x raters): two-way, absolute agreement, single
    measures. NaN with fewer than two subjects or no variance at all."""
    ratings = np.asarray(ratings, float)
    n, k = ratings.shape
    if n < 2 or k < 2:
        return float("nan")
    grand = ratings.mean()
    ms_rows = k * np.sum((ratings.mean(axis=1) - grand) ** 2) / (n - 1)
    ms_cols = n * np.sum((ratings.mean(axis=0) - grand) ** 2) / (k - 1)
    ss_error = np.sum((ratings - ratings.mean(axis=1, keepdims=True) - ratings.mean(axis=0, keepdims=True) + grand) ** 2)
    ms_error = ss_error / ((n - 1) * (k - 1))
    denominator = ms_rows + (k - 1) * ms_error + k * (ms_cols - ms_error) / n
    return float((ms_rows - ms_error) / denominator) if denominator > 0 else float("nan")


def _kappa(truth, detected, labels, weights=None) -> float:
    """Cohen's kappa; NaN where it is undefined (every subject in one and the same category)."""
    truth, detected = list(truth), list(detected)
    if not truth or len(set(truth) | set(detected)) < 2:
        return float("nan")
    return float(cohen_kappa_score(truth, detected, labels=list(labels), weights=weights))


def _auc(has_cmb: np.ndarray, score: np.ndarray) -> float:
    return float(roc_auc_score(has_cmb, score)) if 0 < has_cmb.sum() < len(has_cmb) else float("nan")


def _bootstrap_aucs(has_cmb: np.ndarray, score: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """The subject AUC of each bootstrap replicate (rows of ``draws``: subject indices), NaN
    where a replicate lacks subjects with or without CMBs. The Mann-Whitney form of
    :func:`_auc` (ties count a half), over all replicates at once: a thousand calls of
    scikit-learn's validated ``roc_auc_score`` took seconds of every evaluation."""
    positive = has_cmb[draws]
    ranks = rankdata(score[draws], axis=1)
    n_positive = positive.sum(axis=1)
    n_negative = positive.shape[1] - n_positive
    with np.errstate(invalid="ignore", divide="ignore"):
        aucs = ((ranks * positive).sum(axis=1) - n_positive * (n_positive + 1) / 2) / (n_positive * n_negative)
    return np.where((n_positive > 0) & (n_negative > 0), aucs, np.nan)


def agreement(table: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> dict[str, float]:
    """Subject-level metrics of a :func:`subject_table` (see the module docstring)."""
    has_cmb = (table["cmbs"] > 0).to_numpy()
    positive = (table["detected"] > 0).to_numpy()
    score = table["best_score"].to_numpy(float)
    difference = table["difference"].to_numpy(float)
    rng = np.random.default_rng(seed)
    draws = np.array([rng.integers(0, len(table), len(table)) for _ in range(n_boot)] if len(table) else [], int)
    aucs = _bootstrap_aucs(has_cmb, score, draws) if len(table) else np.array([])
    aucs = aucs[np.isfinite(aucs)]
    spread = float(np.std(difference, ddof=1)) if len(table) > 1 else float("nan")
    bias = float(difference.mean()) if len(table) else float("nan")
    return {
        "subject_auc": _auc(has_cmb, score),
        "subject_auc_lower": float(np.percentile(aucs, 2.5)) if len(aucs) else float("nan"),
        "subject_auc_upper": float(np.percentile(aucs, 97.5)) if len(aucs) else float("nan"),
        "subject_sensitivity": float(positive[has_cmb].mean()) if has_cmb.any() else float("nan"),
        "subject_specificity": float((~positive[~has_cmb]).mean()) if (~has_cmb).any() else float("nan"),
        "count_mae": float(np.abs(difference).mean()) if len(table) else float("nan"),
        "count_bias": bias,
        "count_loa_lower": bias - 1.96 * spread,
        "count_loa_upper": bias + 1.96 * spread,
        "count_icc": icc_absolute_agreement(table[["cmbs", "detected"]].to_numpy(float)),
        "burden_kappa": _kappa(table["burden_true"], table["burden_detected"], BURDEN_NAMES, "linear"),
        "distribution_kappa": _kappa(table["distribution_true"], table["distribution_detected"], DISTRIBUTIONS),
    }


def valdo_subject_f1(candidates: pd.DataFrame, truth: SubjectTruth, max_voxels: float) -> float:
    """One subject's lesion F1 under the VALDO evaluation's rule (module docstring): ``candidates``
    with ``i, j, k`` (voxel of the original image), CMB centres from ``truth.affine``. NaN for a
    subject without CMBs; 0 for one with CMBs and no candidate."""
    n_cmbs = len(truth.lesions)
    if not n_cmbs:
        return float("nan")
    if candidates.empty:
        return 0.0
    centres = world_to_voxel(truth.affine, truth.lesions[["x", "y", "z"]].to_numpy(float))
    distance = np.linalg.norm(candidates[["i", "j", "k"]].to_numpy(float)[:, None] - centres[None], axis=2)
    nearest = distance.argmin(axis=1)
    assigned = distance[np.arange(len(candidates)), nearest] < max_voxels  # strictly less, as the challenge's code
    tp = len(np.unique(nearest[assigned]))  # per CMB its nearest assigned candidate; the rest are false positives
    fp = len(candidates) - tp
    return 2 * tp / (2 * tp + fp + (n_cmbs - tp))


def centre_distance_f1(candidates: pd.DataFrame, truths: dict[str, SubjectTruth], threshold: float, r_min_mm: float,
                       max_voxels: float) -> dict[str, float]:
    """Lesion F1 of the candidates scoring at least ``threshold`` under two centre-distance
    rules: ``f1_centre_mm`` (:class:`HitRule` ``distance``: within ``max(radius, r_min_mm)`` mm;
    pooled over the subjects; a CMB hit twice counts once, the second hit is no false positive;
    possible CMBs are left out) and ``valdo_f1`` (:func:`valdo_subject_f1`, averaged over the
    subjects with CMBs, every CMB counted as the challenge's code has no rating; NaN without an
    instance mask, whose grid defines the voxels, or without any CMB)."""
    rule = HitRule(kind="distance", dilation_voxels=0, r_min_mm=r_min_mm)
    tp = fp = cmbs = 0
    voxel_defined = all(truth.affine is not None for truth in truths.values())
    per_subject = []
    for key, truth in truths.items():
        rows = candidates[(candidates["subject"].astype(str) == key) & (candidates["score"] >= threshold)]
        by_mm = match_candidates(rows, truth, rule)
        tp += int((by_mm["outcome"] == "tp").sum())
        fp += int((by_mm["outcome"] == "fp").sum())
        cmbs += len(definite_lesions(truth.lesions))
        if voxel_defined:
            per_subject.append(valdo_subject_f1(by_mm, truth, max_voxels))
    scored = [value for value in per_subject if np.isfinite(value)]
    return {"f1_centre_mm": 2 * tp / (2 * tp + fp + cmbs - tp) if cmbs + fp else float("nan"),
            "valdo_f1": float(np.mean(scored)) if scored else float("nan")}
