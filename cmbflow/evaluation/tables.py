"""Tables over variants and sites (TSV + Markdown): models x sites (the paper's Table 1/4),
localization (Table 3) and published results of other work (Table 2, other data)."""

from __future__ import annotations

import pandas as pd

MODEL_COLUMNS = ["variant", "dataset", "filter", "subjects", "cmbs", "cmbs_possible", "threshold", "threshold_source", "sensitivity",
                 "fp_per_subject", "precision", "f1", "cpm", "cpm_lower", "cpm_upper", "ap",
                 "cpm_all_cmbs",  # possible CMBs (left out of every other column) scored as definite
                 # per subject (cmbflow.evaluation.subjects): has >= 1 CMB, census counts, MARS categories; VALDO-style F1s
                 "subject_auc", "subject_auc_lower", "subject_auc_upper", "subject_sensitivity", "subject_specificity",
                 "count_mae", "count_bias", "count_loa_lower", "count_loa_upper", "count_icc", "burden_kappa",
                 "distribution_kappa", "f1_centre_mm", "valdo_f1"]


def models_by_site(runs: list[dict]) -> pd.DataFrame:
    """One row per variant x dataset x filter (``before`` / ``after`` anatomical filtering)
    from the ``summary`` TSVs of the runs (``variant``, ``dataset``, ``summary``)."""
    rows = []
    for run in runs:
        summary = pd.read_csv(run["summary"], sep="\t")
        rows.append(summary.assign(variant=run["variant"], dataset=run["dataset"]))
    table = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=MODEL_COLUMNS)
    return table.reindex(columns=MODEL_COLUMNS)


def markdown(table: pd.DataFrame, title: str, note: str = "", digits: int = 3) -> str:
    """A Markdown document: heading, optional note, and the table (numbers rounded)."""
    rounded = table.round(digits).astype(object).where(table.notna(), "")
    header = "| " + " | ".join(map(str, rounded.columns)) + " |"
    rule = "|" + "|".join("---" for _ in rounded.columns) + "|"
    lines = ["| " + " | ".join(str(value) for value in row) + " |" for row in rounded.itertuples(index=False)]
    return "\n".join([f"# {title}", "", *([note, ""] if note else []), header, rule, *lines, ""])
