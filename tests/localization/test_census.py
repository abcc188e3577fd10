import pandas as pd

from cmbflow.localization.census import CMB_COLUMNS, census


def _candidates():
    rows = [  # subject, region, kept, score
        ("001", "lobar", True, 0.9), ("001", "lobar", True, 0.6), ("001", "deep", True, 0.55),
        ("001", "infratentorial", True, 0.3),  # below the operating threshold
        ("001", "outside", False, 0.95),  # filtered out however high it scores
        ("002", "infratentorial", True, 0.8),
    ]
    table = pd.DataFrame(rows, columns=["subject", "region", "kept", "score"])
    table["candidate"] = [f"{s}_{n:03d}" for n, s in enumerate(table["subject"])]
    for column in ("x", "y", "z", "diameter_mm"):
        table[column] = 1.0
    return table


def test_the_census_counts_kept_cmbs_above_the_threshold_per_region_and_lists_every_subject():
    cmbs, counts = census(_candidates(), ["001", "002", "003"], score_threshold=0.5)
    assert list(cmbs.columns) == CMB_COLUMNS
    assert cmbs["score"].tolist() == [0.9, 0.6, 0.55, 0.8]  # best first within a subject
    assert counts.to_dict("records") == [
        {"subject": "001", "lobar": 2, "deep": 1, "infratentorial": 0, "total": 3},
        {"subject": "002", "lobar": 0, "deep": 0, "infratentorial": 1, "total": 1},
        {"subject": "003", "lobar": 0, "deep": 0, "infratentorial": 0, "total": 0},  # no CMB found: still a row
    ]


def test_an_empty_census_still_has_a_row_per_subject():
    cmbs, counts = census(_candidates(), ["001"], score_threshold=0.99)
    assert cmbs.empty and list(cmbs.columns) == CMB_COLUMNS
    assert counts.to_dict("records") == [{"subject": "001", "lobar": 0, "deep": 0, "infratentorial": 0, "total": 0}]
