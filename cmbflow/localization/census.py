"""The MARS-style census a clinician reads: the CMBs found in each subject and their counts per region.

A CMB of the census is a localized candidate that is kept (inside a brain region) and scores
at least the operating threshold (config ``census.score_threshold``). Positions are world mm
RAS+ of the subject's original image, so the rows overlay on their scan.
"""

from __future__ import annotations

import pandas as pd

from cmbflow.atlas import DEEP, INFRATENTORIAL, LOBAR, REGION_NAMES

COUNTED_REGIONS = tuple(REGION_NAMES[code] for code in (LOBAR, DEEP, INFRATENTORIAL))
CMB_COLUMNS = ["subject", "candidate", "x", "y", "z", "diameter_mm", "score", "region"]


def census(candidates: pd.DataFrame, subjects: list[str], score_threshold: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(cmbs, counts)`` of localized ``candidates`` (columns of
    :data:`cmbflow.inference.detect.CANDIDATE_COLUMNS` plus ``region``, ``kept``).
    ``cmbs``: :data:`CMB_COLUMNS`, best first per subject; ``counts``: one row per subject of
    ``subjects`` (zero rows included) with a count per region of :data:`COUNTED_REGIONS` and ``total``."""
    chosen = candidates[candidates["kept"].astype(bool) & (candidates["score"] >= score_threshold)]
    cmbs = chosen.sort_values(["subject", "score"], ascending=[True, False], kind="stable")[CMB_COLUMNS].reset_index(drop=True)
    counts = (pd.crosstab(cmbs["subject"], cmbs["region"]) if len(cmbs) else pd.DataFrame())
    counts = counts.reindex(index=list(subjects), columns=list(COUNTED_REGIONS), fill_value=0).fillna(0).astype(int)
    counts["total"] = counts.sum(axis=1)
    return cmbs, counts.rename_axis("subject").reset_index()
