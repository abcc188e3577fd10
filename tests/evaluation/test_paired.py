"""Paired bootstrap of variant differences: zero for identical variants, the sign and size of a real difference."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cmbflow.evaluation.paired import paired_differences


def _matched(subjects: int, found_share: float, seed: int) -> tuple[pd.DataFrame, dict[str, int]]:
    """Two CMBs per subject; a share of them found with high scores, FPs with low scores."""
    rng = np.random.default_rng(seed)
    rows, counts = [], {}
    for n in range(subjects):
        key = f"{n:03d}"
        counts[key] = 2
        for lesion in (1, 2):
            if rng.random() < found_share:
                rows.append({"subject": key, "score": rng.uniform(0.6, 1.0), "lesion": lesion, "outcome": "tp"})
        for _ in range(3):
            rows.append({"subject": key, "score": rng.uniform(0.0, 0.5), "lesion": 0, "outcome": "fp"})
    return pd.DataFrame(rows), counts


def test_identical_variants_differ_by_exactly_zero():
    matched, counts = _matched(10, 0.7, seed=1)
    table = paired_differences("site", {"a": matched, "b": matched.copy()}, counts, "after", n_boot=200)
    row = table.iloc[0]
    assert row["delta_cpm"] == 0 and row["delta_cpm_lower"] == 0 and row["delta_cpm_upper"] == 0
    assert row["p_not_better_cpm"] == 1.0


def test_a_variant_that_finds_more_is_better_with_an_interval_above_zero():
    weak, counts = _matched(30, 0.5, seed=2)
    # The strong variant finds every CMB the weak one finds, and the rest too.
    strong = pd.concat([weak, pd.DataFrame([{"subject": s, "score": 0.9, "lesion": lesion, "outcome": "tp"}
                                            for s in counts for lesion in (1, 2)
                                            if not ((weak["subject"] == s) & (weak["lesion"] == lesion)).any()])])
    table = paired_differences("site", {"weak": weak, "strong": strong}, counts, "after", n_boot=300, seed=0)
    row = table.iloc[0]
    assert (row["variant_a"], row["variant_b"]) == ("weak", "strong")
    assert row["delta_sens1"] > 0.3 and row["delta_sens1_lower"] > 0.2
    assert row["delta_cpm_lower"] > 0 and row["p_not_better_cpm"] == 0.0
    assert row["cmbs"] == 60 and row["subjects"] == 30
