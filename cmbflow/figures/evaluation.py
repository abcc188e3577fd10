"""Evaluation figures of one site, all variants together: FROC with bootstrap bands (the
paper's Fig. 9a), precision-recall (Fig. 9b), false positives per subject (Fig. 10) and the
Bland-Altman plot of the census counts against the annotated ones.

Every figure is written as PNG (report) and PDF (vector, for publication).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from cmbflow.evaluation.froc import FP_LEVELS  # noqa: E402

FILTER_STYLE = {"after": "-", "before": "--"}
FILTER_LABEL = {"after": "after anatomical filtering", "before": "before"}


def save_figure(fig, png: str, pdf: str) -> None:
    """Write ``fig`` as PNG (150 dpi) and vector PDF, then close it."""
    Path(png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=150, bbox_inches="tight")
    fig.savefig(pdf, bbox_inches="tight")
    plt.close(fig)


def _colours(variants):
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return {variant: cycle[n % len(cycle)] for n, variant in enumerate(variants)}


def _step_curves(ax, points: pd.DataFrame, x: str, y: str, colour, label) -> None:
    """One step curve per filter of ``points`` (``filter`` column): after solid, before dashed;
    ``label(filter)`` names each."""
    for name in ("after", "before"):
        rows = points[points["filter"] == name]
        if not rows.empty:
            ax.step(rows[x].clip(lower=1e-3) if x == "fp_per_subject" else rows[x], rows[y], where="post", color=colour,
                    linestyle=FILTER_STYLE[name], linewidth=1.6 if name == "after" else 1.0, label=label(name))


def plot_froc(runs: dict[str, dict[str, pd.DataFrame]], title: str, png: str, pdf: str) -> None:
    """FROC of each variant (``runs``: variant -> ``froc``, ``froc_band`` tables of
    :func:`cmbflow.evaluation.run.evaluate_detection`): after filtering solid with its 95 %
    bootstrap band, before filtering dashed; FPs per subject on a log axis."""
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    colours = _colours(runs)
    for variant, tables in runs.items():
        _step_curves(ax, tables["froc"], "fp_per_subject", "sensitivity", colours[variant],
                     lambda name: f"{variant} ({FILTER_LABEL[name]})")
        band = tables["froc_band"][tables["froc_band"]["filter"] == "after"]
        ax.fill_between(band["fp_per_subject"], band["lower"], band["upper"], color=colours[variant], alpha=0.15, linewidth=0)
    for level in FP_LEVELS:
        ax.axvline(level, color="0.85", linewidth=0.6, zorder=0)
    ax.set_xscale("log")
    ax.set_xlim(FP_LEVELS[0] / 2, FP_LEVELS[-1] * 2)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("false positives per subject")
    ax.set_ylabel("sensitivity")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="lower right")
    save_figure(fig, png, pdf)


def plot_precision_recall(runs: dict[str, dict[str, pd.DataFrame]], summaries: dict[str, pd.DataFrame], title: str,
                          png: str, pdf: str) -> None:
    """Precision-recall curve of each variant after filtering (dashed: before), AP in the legend."""
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    colours = _colours(runs)
    for variant, tables in runs.items():
        ap = summaries[variant].set_index("filter")["ap"]
        _step_curves(ax, tables["pr"], "recall", "precision", colours[variant],
                     lambda name: f"{variant} ({FILTER_LABEL[name]}), AP {ap[name]:.2f}")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall (sensitivity)")
    ax.set_ylabel("precision")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="lower left")
    save_figure(fig, png, pdf)


def false_positives_per_subject(matched: pd.DataFrame, subjects: list[str], threshold: float) -> pd.Series:
    """False positives scoring at least ``threshold`` per subject (zero for a subject with none)."""
    chosen = matched[(matched["outcome"] == "fp") & (matched["score"] >= threshold)]
    return chosen.groupby(chosen["subject"].astype(str)).size().reindex(subjects, fill_value=0)


def plot_fp_distribution(counts: dict[str, pd.Series], title: str, png: str, pdf: str) -> None:
    """Box plot of the false positives per subject at the operating point, one box per variant,
    every subject a dot (``counts``: variant -> FPs per subject)."""
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(counts), 4.0))
    names = list(counts)
    ax.boxplot([counts[name].to_numpy() for name in names], showfliers=False)
    rng = np.random.default_rng(0)  # jitter only
    for position, name in enumerate(names, start=1):
        values = counts[name].to_numpy()
        ax.scatter(position + rng.uniform(-0.12, 0.12, len(values)), values, s=12, color="0.25", zorder=3)
    ax.set_xticks(range(1, len(names) + 1), names, rotation=20)
    ax.set_ylabel("false positives per subject (operating point)")
    ax.set_title(title)
    save_figure(fig, png, pdf)


def plot_count_agreement(tables: dict[str, pd.DataFrame], summaries: dict[str, pd.DataFrame], title: str, png: str,
                         pdf: str) -> None:
    """Bland-Altman plot of the census counts, one panel per variant (``tables``: variant -> the
    ``subjects`` table of :func:`cmbflow.evaluation.run.evaluate_detection`; ``summaries``: its
    ``summary``): detected minus annotated count against their mean, every subject a dot,
    the bias and the 95 % limits of agreement of the summary's ``after`` row."""
    fig, axes = plt.subplots(1, len(tables), figsize=(0.6 + 3.4 * len(tables), 3.4), sharey=True, squeeze=False)
    for ax, (variant, table) in zip(axes[0], tables.items()):
        after = summaries[variant].set_index("filter").loc["after"]
        mean = (table["cmbs"] + table["detected"]) / 2
        ax.scatter(mean, table["difference"], s=16, color="0.25", alpha=0.7, zorder=3)
        for value, style in ((after["count_bias"], "-"), (after["count_loa_lower"], "--"), (after["count_loa_upper"], "--")):
            if np.isfinite(value):
                ax.axhline(value, color="tab:blue", linestyle=style, linewidth=1)
        ax.axhline(0, color="0.6", linewidth=0.8)
        ax.set_title(f"{variant}\nMAE {after['count_mae']:.2f}, ICC {after['count_icc']:.2f}", fontsize=9)
        ax.set_xlabel("mean of detected and annotated count")
    axes[0][0].set_ylabel("detected - annotated CMBs per subject")
    fig.suptitle(title, y=1.06)
    save_figure(fig, png, pdf)


KIND_STYLE = {"TP": ("tab:green", "o"), "FP": ("tab:red", "^"), "FN": ("tab:orange", "s"), "TN": ("tab:blue", ".")}


def plot_embedding(table: pd.DataFrame, title: str, png: str, pdf: str) -> None:
    """t-SNE scatter (``tsne_1``, ``tsne_2``) coloured by ``kind`` (TP / FP / FN / TN)."""
    fig, ax = plt.subplots(figsize=(5.0, 4.4))
    for kind, (colour, marker) in KIND_STYLE.items():
        rows = table[table["kind"] == kind]
        if len(rows):
            ax.scatter(rows["tsne_1"], rows["tsne_2"], s=18 if kind != "TN" else 30, c=colour, marker=marker,
                       label=f"{kind} ({len(rows)})", alpha=0.8, linewidths=0)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title)
    ax.legend(fontsize=7, loc="best")
    save_figure(fig, png, pdf)


def plot_paired_differences(table: pd.DataFrame, title: str, png: str, pdf: str) -> None:
    """Forest plot of the paired bootstrap differences (:mod:`cmbflow.evaluation.paired`):
    per dataset and variant pair, ΔCPM and Δsensitivity at 1 FP/subject after anatomical
    filtering, with their 95 % intervals; a line at 0 (no difference)."""
    rows = table[table["filter"] == "after"].reset_index(drop=True)
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.45 * max(len(rows), 1) + 1.4), sharey=True)
    labels = [f"{r.dataset}: {r.variant_b} − {r.variant_a}" for r in rows.itertuples()]
    y = np.arange(len(rows))[::-1]
    for ax, column, name in ((axes[0], "cpm", "ΔCPM"), (axes[1], "sens1", "Δ sensitivity at 1 FP/subject")):
        if len(rows):
            centre = rows[f"delta_{column}"].to_numpy(float)
            lower, upper = rows[f"delta_{column}_lower"].to_numpy(float), rows[f"delta_{column}_upper"].to_numpy(float)
            ax.errorbar(centre, y, xerr=[centre - lower, upper - centre], fmt="o", color="black", capsize=3)
        ax.axvline(0.0, color="grey", linestyle=":")
        ax.set_xlabel(f"{name} (95 % paired bootstrap interval)")
    axes[0].set_yticks(y, labels)
    fig.suptitle(title)
    save_figure(fig, png, pdf)
