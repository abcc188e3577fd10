"""The figures of one site from the evaluation tables of its variants."""

from __future__ import annotations

import pandas as pd

from cmbflow.figures.evaluation import (false_positives_per_subject, plot_count_agreement, plot_fp_distribution, plot_froc,
                                        plot_precision_recall)


def site_figures(runs: dict[str, dict[str, str]], subjects: list[str], dataset: str, outputs: dict[str, str]) -> None:
    """``runs``: variant -> :func:`cmbflow.paths.evaluation_files`; ``outputs``: ``froc``,
    ``pr``, ``fps``, ``counts`` (PNG) and the same with ``_pdf``."""
    tables = {variant: {key: pd.read_csv(files[key], sep="\t", dtype={"subject": str})
                        for key in ("summary", "froc", "froc_band", "pr", "matched", "subjects")} for variant, files in runs.items()}
    summaries = {variant: t["summary"] for variant, t in tables.items()}
    plot_froc(tables, f"{dataset}: FROC", outputs["froc"], outputs["froc_pdf"])
    plot_precision_recall(tables, summaries, f"{dataset}: precision-recall", outputs["pr"], outputs["pr_pdf"])
    counts = {}
    for variant, t in tables.items():
        threshold = float(t["summary"]["threshold"].iloc[0])
        after = t["matched"][t["matched"]["filter"] == "after"]
        counts[variant] = false_positives_per_subject(after, [str(s) for s in subjects], threshold)
    plot_fp_distribution(counts, f"{dataset}: FPs per subject", outputs["fps"], outputs["fps_pdf"])
    plot_count_agreement({variant: t["subjects"] for variant, t in tables.items()}, summaries,
                         f"{dataset}: census counts against the annotations (Bland-Altman)", outputs["counts"], outputs["counts_pdf"])
