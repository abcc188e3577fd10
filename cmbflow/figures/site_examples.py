"""Example figures of one dataset from its candidate and evaluation tables."""

from __future__ import annotations

import pandas as pd

from cmbflow.figures.examples import candidate_panels, filtered_candidates


def example_figures(runs: dict[str, dict[str, str]], swi: dict[str, str], regions: dict[str, str], dataset: str,
                    filtered_variant: str, outputs: dict[str, str]) -> None:
    """``runs``: variant -> ``candidates`` (localized table) and, where annotated, ``matched``
    and ``summary`` of its evaluation; ``outputs``: ``panels``, ``filtered`` and their ``_pdf``.
    Without annotations the panels show the best candidates, unjudged."""
    matched, thresholds = {}, {}
    for variant, files in runs.items():
        if files.get("matched"):
            table = pd.read_csv(files["matched"], sep="\t", dtype={"subject": str, "candidate": str})
            matched[variant] = table[table["filter"] == "after"]
            thresholds[variant] = float(pd.read_csv(files["summary"], sep="\t")["threshold"].iloc[0])
        else:
            table = pd.read_csv(files["candidates"], sep="\t", dtype={"subject": str, "candidate": str})
            matched[variant] = table[table["kept"].astype(bool)].assign(outcome="candidate")
            thresholds[variant] = 0.0
    candidate_panels(matched, swi, thresholds, f"{dataset}: best candidates per variant (TP green, FP red)",
                     outputs["panels"], outputs["panels_pdf"])
    candidates = pd.read_csv(runs[filtered_variant]["candidates"], sep="\t", dtype={"subject": str, "candidate": str})
    filtered_candidates(candidates, swi, regions, f"{dataset}, {filtered_variant}: anatomical filtering",
                        outputs["filtered"], outputs["filtered_pdf"])
