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
* **lesion F1 by centre distance**: ``f1_centre_mm`` matches a candidate to a CMB whose centre
  lies within ``max(radius, r_min_mm)`` millimetres (world mm), ``f1_voxel_rule`` within
  ``max_voxels`` voxels of the original image (the centre-distance-in-voxels rule of the VALDO
  challenge's evaluation; the distance is a setting, ``evaluation.voxel_rule_voxels``).

ICC(A,1) is written out here (McGraw & Wong 1996, two-way, absolute agreement, single
measures, = Shrout & Fleiss ICC(2,1)): it is three lines of ANOVA, and the packages that have
it (pingouin) would add a dependency tree for one formula. AUC and kappa are scikit-learn's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import cohen_kappa_score, roc_auc_score

from cmbflow.evaluation.detection import HitRule, SubjectTruth, match_candidates
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


def agreement(table: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> dict[str, float]:
    """Subject-level metrics of a :func:`subject_table` (see the module docstring)."""
    has_cmb = (table["cmbs"] > 0).to_numpy()
    positive = (table["detected"] > 0).to_numpy()
    score = table["best_score"].to_numpy(float)
    difference = table["difference"].to_numpy(float)
    rng = np.random.default_rng(seed)
    draws = [rng.integers(0, len(table), len(table)) for _ in range(n_boot)] if len(table) else []
    aucs = np.array([_auc(has_cmb[d], score[d]) for d in draws], float)
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


def voxel_distance_hits(candidates: pd.DataFrame, truth: SubjectTruth, max_voxels: float) -> np.ndarray:
    """Id of the CMB each candidate (``i, j, k`` voxel of the original image) hits under the
    voxel rule: the nearest CMB centre within ``max_voxels`` voxels (index space of the original
    image, the CMB centre from ``truth.affine``); 0 none."""
    hits = np.zeros(len(candidates), int)
    if truth.lesions.empty or candidates.empty or truth.affine is None:
        return hits
    centres = world_to_voxel(truth.affine, truth.lesions[["x", "y", "z"]].to_numpy(float))
    distance = np.linalg.norm(candidates[["i", "j", "k"]].to_numpy(float)[:, None] - centres[None], axis=2)
    nearest = distance.argmin(axis=1)
    found = distance[np.arange(len(candidates)), nearest] <= max_voxels
    hits[found] = truth.lesions["lesion"].to_numpy(int)[nearest[found]]
    return hits


def centre_distance_f1(candidates: pd.DataFrame, truths: dict[str, SubjectTruth], threshold: float, r_min_mm: float,
                       max_voxels: float) -> dict[str, float]:
    """Lesion F1 of the candidates scoring at least ``threshold`` under two centre-distance
    rules: ``f1_centre_mm`` (:class:`HitRule` ``distance``: within ``max(radius, r_min_mm)``
    mm) and ``f1_voxel_rule`` (:func:`voxel_distance_hits`; NaN without an instance mask, whose
    grid defines the voxels). A CMB hit twice counts once; the second hit is no false positive."""
    rule = HitRule(kind="distance", dilation_voxels=0, r_min_mm=r_min_mm)
    counts = {"mm": [0, 0, 0], "voxel": [0, 0, 0]}  # tp, fp, cmbs
    voxel_defined = all(truth.affine is not None for truth in truths.values())
    for key, truth in truths.items():
        rows = candidates[(candidates["subject"].astype(str) == key) & (candidates["score"] >= threshold)]
        by_mm = match_candidates(rows, truth, rule)
        by_voxel = by_mm.assign(lesion=voxel_distance_hits(by_mm, truth, max_voxels))
        for name, table in (("mm", by_mm), ("voxel", by_voxel)):
            first = table["lesion"] > 0
            counts[name][0] += int(table.loc[first, "lesion"].nunique())
            counts[name][1] += int((~first).sum())
            counts[name][2] += len(truth.lesions)

    def f1(tp, fp, cmbs):
        return 2 * tp / (2 * tp + fp + cmbs - tp) if cmbs + fp else float("nan")

    return {"f1_centre_mm": f1(*counts["mm"]), "f1_voxel_rule": f1(*counts["voxel"]) if voxel_defined else float("nan")}
