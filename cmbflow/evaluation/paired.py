"""Paired comparison of detector variants: subject-level bootstrap of the differences.

Two variants scored on the same subjects are not independent samples: a hard subject is
hard for both. So each bootstrap replicate draws the subjects once (with replacement) and
computes both variants' FROC on that same draw; the spread of the differences is then the
spread that the choice of subjects gives the *difference*, usually far narrower than the two
separate intervals suggest. Reported per dataset and variant pair: ΔCPM and Δsensitivity
at 1 FP per subject (``b - a``), their 95 % percentile intervals, and the share of replicates
in which ``b`` is not better (a one-sided bootstrap p-value).
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

from cmbflow.evaluation.detection import definite_lesions
from cmbflow.evaluation.froc import SubjectResampler, _scored, cpm, curve_cpm, froc_curve, sensitivity_at, subject_draws

COLUMNS = ["dataset", "filter", "variant_a", "variant_b", "subjects", "cmbs", "cpm_a", "cpm_b", "delta_cpm",
           "delta_cpm_lower", "delta_cpm_upper", "p_not_better_cpm", "sens1_a", "sens1_b", "delta_sens1",
           "delta_sens1_lower", "delta_sens1_upper", "p_not_better_sens1", "replicates"]


def _curve_numbers(pooled: pd.DataFrame, n_lesions: int, n_subjects: int) -> tuple[float, float]:
    points = froc_curve(pooled, n_lesions, n_subjects)
    return cpm(points), float(sensitivity_at(points, [1.0])[0])


def paired_bootstrap(matched: dict[str, pd.DataFrame], lesions_per_subject: dict[str, int], n_boot: int = 1000,
                     seed: int = 0) -> dict[str, np.ndarray]:
    """``(n_boot, 2)`` arrays of (CPM, sensitivity at 1 FP) per variant, every variant computed
    on the same subject draws (:func:`cmbflow.evaluation.froc.subject_draws`). ``matched``:
    variant -> matched candidates (``subject``, ``score``, ``outcome``); ``lesions_per_subject``:
    subject -> CMB count (all subjects scored, with or without CMBs)."""
    resamplers = {name: SubjectResampler(table, list(lesions_per_subject)) for name, table in matched.items()}
    out = {name: [] for name in matched}
    for counts, n_lesions in subject_draws(lesions_per_subject, n_boot, seed):
        for name, resampler in resamplers.items():
            fp_rate, sensitivity = resampler.curve(counts, n_lesions)
            out[name].append((curve_cpm(fp_rate, sensitivity), float(np.interp(1.0, fp_rate, sensitivity))))
    return {name: np.asarray(values) for name, values in out.items()}


def paired_differences(dataset: str, matched: dict[str, pd.DataFrame], lesions_per_subject: dict[str, int],
                       filter_name: str, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per variant pair ``(a, b)`` (config order) of :data:`COLUMNS` on one dataset."""
    n_lesions = int(sum(lesions_per_subject.values()))
    n_subjects = len(lesions_per_subject)
    if n_lesions == 0 or len(matched) < 2:
        return pd.DataFrame(columns=COLUMNS)
    point = {name: _curve_numbers(_scored(table), n_lesions, n_subjects) for name, table in matched.items()}
    replicates = paired_bootstrap(matched, lesions_per_subject, n_boot, seed)
    rows = []
    for a, b in combinations(list(matched), 2):
        delta = replicates[b] - replicates[a]
        row = {"dataset": dataset, "filter": filter_name, "variant_a": a, "variant_b": b, "subjects": n_subjects,
               "cmbs": n_lesions, "replicates": len(delta)}
        for column, index in (("cpm", 0), ("sens1", 1)):
            row.update({f"{column}_a": point[a][index], f"{column}_b": point[b][index],
                        f"delta_{column}": point[b][index] - point[a][index],
                        f"delta_{column}_lower": float(np.percentile(delta[:, index], 2.5)),
                        f"delta_{column}_upper": float(np.percentile(delta[:, index], 97.5)),
                        f"p_not_better_{column}": float(np.mean(delta[:, index] <= 0))})
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


def paired_table(runs: dict[str, dict[str, dict[str, str]]], subjects: dict[str, list[str]], n_boot: int = 1000,
                 seed: int = 0) -> pd.DataFrame:
    """Paired differences for every dataset and filter (before / after anatomical filtering).

    ``runs``: dataset -> variant -> its evaluation files ``matched`` (both filters) and
    ``lesions`` (every CMB, :mod:`cmbflow.evaluation.run`); ``subjects``: dataset -> the
    scored subjects, with or without CMBs."""
    tables = []
    for dataset, by_variant in runs.items():
        frames = {variant: pd.read_csv(files["matched"], sep="\t", dtype={"subject": str})
                  for variant, files in by_variant.items()}
        lesions = pd.read_csv(next(iter(by_variant.values()))["lesions"], sep="\t", dtype={"subject": str})
        counts = definite_lesions(lesions).groupby("subject").size()  # possible CMBs are not scored
        per_subject = {str(key): int(counts.get(str(key), 0)) for key in subjects[dataset]}
        for filter_name in ("before", "after"):
            matched = {variant: frame[frame["filter"] == filter_name] for variant, frame in frames.items()}
            tables.append(paired_differences(dataset, matched, per_subject, filter_name, n_boot, seed))
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=COLUMNS)
