"""Detection scoring: which candidates hit which CMB, and the FROC curve.

A candidate **hits** a CMB when its centre (voxel of the original image, rounded) lies in
that CMB's mask dilated by ``dilation_voxels`` (one by default). Candidates are taken best
first; the first hit of a CMB is a true positive, later candidates on an already-found CMB
are ``duplicate`` (neither true nor false positive, as in the LUNA16 FROC), the rest are
false positives.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage

OUTCOMES = ("tp", "fp", "duplicate")


def dilated_lesions(labels: np.ndarray, dilation_voxels: int = 1) -> np.ndarray:
    """Instance labels ``(I, J, K)`` grown by ``dilation_voxels`` (a 3x3x3 cube per step);
    where two grown CMBs meet, the higher label wins (rare: CMBs are millimetres apart)."""
    if dilation_voxels <= 0:
        return labels
    return ndimage.grey_dilation(labels, size=(2 * dilation_voxels + 1,) * 3)


def match_candidates(candidates: pd.DataFrame, labels: np.ndarray, dilation_voxels: int = 1) -> pd.DataFrame:
    """Candidates of one subject (columns ``i, j, k`` voxel of the original image, ``score``),
    with ``lesion`` (instance hit, 0 none) and ``outcome`` (:data:`OUTCOMES`) added, best first."""
    grown = dilated_lesions(np.asarray(labels), dilation_voxels)
    table = candidates.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)
    voxels = np.rint(table[["i", "j", "k"]].to_numpy(float)).astype(int).reshape(-1, 3)
    inside = np.all((voxels >= 0) & (voxels < np.array(grown.shape)), axis=1)
    lesion = np.zeros(len(table), int)
    lesion[inside] = grown[tuple(voxels[inside].T)]
    first = ~pd.Series(lesion).duplicated().to_numpy()
    table["lesion"] = lesion
    table["outcome"] = np.where(lesion == 0, "fp", np.where(first, "tp", "duplicate"))
    return table


def froc(matched: pd.DataFrame, n_lesions: int, n_subjects: int) -> pd.DataFrame:
    """FROC points of candidates pooled over subjects (``score`` and ``outcome`` columns): one
    row per distinct score threshold, with ``fp_per_subject`` and ``sensitivity``."""
    if n_lesions <= 0 or n_subjects <= 0:
        raise ValueError(f"need lesions and subjects, got {n_lesions} lesions in {n_subjects} subjects")
    table = matched[matched["outcome"] != "duplicate"].sort_values("score", ascending=False, kind="stable")
    tp = np.cumsum(table["outcome"].to_numpy() == "tp")
    fp = np.cumsum(table["outcome"].to_numpy() == "fp")
    points = pd.DataFrame({"threshold": table["score"].to_numpy(), "sensitivity": tp / n_lesions,
                           "fp_per_subject": fp / n_subjects})
    points = points.groupby("threshold", sort=False).last().reset_index()  # ties enter together
    start = pd.DataFrame({"threshold": [1.0], "sensitivity": [0.0], "fp_per_subject": [0.0]})
    return pd.concat([start, points], ignore_index=True)


def sensitivity_at(points: pd.DataFrame, fp_per_subject: float) -> float:
    """Highest sensitivity of a FROC with at most ``fp_per_subject`` false positives per subject."""
    allowed = points[points["fp_per_subject"] <= fp_per_subject + 1e-9]
    return float(allowed["sensitivity"].max())


FP_LEVELS = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)  # false positives per subject (the FROC's usual points)


def score_dataset(candidates: pd.DataFrame, masks: dict[str, str], dilation_voxels: int = 1) -> tuple[pd.DataFrame, int]:
    """Match the candidates of every subject of ``masks`` (key -> CMB instance mask on the
    original grid). Returns the matched candidates of all subjects and the number of CMBs."""
    matched, n_lesions = [], 0
    for key, path in masks.items():
        labels = np.asarray(nib.load(path).dataobj).astype(np.int32)
        n_lesions += len(np.unique(labels[labels > 0]))
        rows = candidates[candidates["subject"].astype(str) == str(key)]
        matched.append(match_candidates(rows, labels, dilation_voxels).assign(subject=str(key)))
    return pd.concat(matched, ignore_index=True), n_lesions


def sensitivity_table(runs: list[dict], masks: dict[str, dict[str, str]], fp_levels=FP_LEVELS) -> pd.DataFrame:
    """One row per run (``variant``, ``dataset``, ``table`` path of its candidates): subjects,
    CMBs, and the sensitivity at each of ``fp_levels`` false positives per subject."""
    rows = []
    for run in runs:
        candidates = pd.read_csv(run["table"], sep="\t", dtype={"subject": str})
        subject_masks = masks[run["dataset"]]
        matched, n_lesions = score_dataset(candidates, subject_masks)
        row = {"variant": run["variant"], "dataset": run["dataset"], "subjects": len(subject_masks), "cmbs": n_lesions}
        points = froc(matched, n_lesions, len(subject_masks)) if n_lesions else None
        row.update({f"sens_at_{level:g}_fp": sensitivity_at(points, level) if points is not None else np.nan
                    for level in fp_levels})
        rows.append(row)
    return pd.DataFrame(rows)
