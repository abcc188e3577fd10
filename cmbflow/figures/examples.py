"""Example figures on the model-ready grid (RAS-aligned, so axial slices read the usual way):
candidate panels with scores (the paper's Fig. 8) and the candidates anatomical filtering
removed over the region overlay (Fig. 11). Positions come in world mm RAS+ and are mapped to
grid voxels with the preprocessed SWI's affine.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from cmbflow.figures.evaluation import save_figure  # noqa: E402
from cmbflow.figures.qc import REGION_COLOURS  # noqa: E402
from cmbflow.io.coords import world_to_voxel  # noqa: E402
from cmbflow.io.nifti import load_volume  # noqa: E402

CROP_MM = 32.0  # side of a candidate panel


def _crop(image: np.ndarray, voxel: np.ndarray, half: np.ndarray) -> np.ndarray:
    """Axial crop of ``image`` around ``voxel`` (indices), ``2 * half + 1`` voxels wide, zero outside."""
    i, j, k = np.rint(voxel).astype(int)
    k = int(np.clip(k, 0, image.shape[2] - 1))
    padded = np.pad(image[:, :, k], [(h, h) for h in half[:2]])
    return padded[i:i + 2 * half[0] + 1, j:j + 2 * half[1] + 1]


def candidate_panels(matched: dict[str, pd.DataFrame], swi: dict[str, str], threshold: dict[str, float], title: str,
                     png: str, pdf: str, per_kind: int = 3, saliency=None) -> None:
    """One row per variant (``matched``: variant -> its evaluated candidates after filtering,
    ``outcome`` tp / fp, or ``candidate`` where unannotated): its ``per_kind`` best true
    positives and false positives (or twice as many candidates), each an axial SWI crop of
    :data:`CROP_MM` centred on the candidate, titled with its score (threshold per variant).
    ``saliency(variant, subject, voxel) -> (patch, centre)``, when given: a second row per
    variant shows each candidate's saliency (:func:`cmbflow.figures.saliency.saliency_at`,
    the same axial slice) over the SWI, beside its panel."""
    images = {}
    rows = 2 if saliency else 1
    fig, axes = plt.subplots(rows * len(matched), 2 * per_kind, figsize=(1.8 * 2 * per_kind, 2.0 * rows * len(matched)),
                             squeeze=False)
    for n, (variant, table) in enumerate(matched.items()):
        row = axes[rows * n]
        chosen = pd.concat([table[table["outcome"] == kind].nlargest(per_kind * (2 if kind == "candidate" else 1), "score")
                            for kind in ("tp", "fp", "candidate")])
        for ax in axes[rows * n:rows * (n + 1)].ravel():
            ax.axis("off")
        for column, candidate in enumerate(chosen.itertuples()):
            ax = row[column]
            key = str(candidate.subject)
            if key not in images:
                images[key] = load_volume(swi[key])
            image, affine = images[key]
            spacing = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
            half = np.maximum(np.rint(CROP_MM / 2 / spacing), 1).astype(int)
            voxel = world_to_voxel(affine, np.array([[candidate.x, candidate.y, candidate.z]]))[0]
            crop = _crop(image, voxel, half)
            ax.imshow(crop.T, origin="lower", cmap="gray", vmin=0, vmax=1)
            colour = {"tp": "tab:green", "fp": "tab:red"}.get(candidate.outcome, "tab:blue")
            ax.add_patch(plt.Circle((half[0], half[1]), radius=max(candidate.diameter_mm / spacing[0], 2), fill=False,
                                    color=colour, linewidth=1.0))
            above = "" if candidate.score >= threshold[variant] else " (below op.)"
            label = candidate.outcome.upper() if candidate.outcome in ("tp", "fp") else "score"
            ax.set_title(f"{label} {candidate.score:.2f}{above}", fontsize=7, color=colour)
            if saliency:
                patch, centre = saliency(variant, key, voxel)
                heat = _crop(patch, centre, half)
                below = axes[rows * n + 1][column]
                below.imshow(crop.T, origin="lower", cmap="gray", vmin=0, vmax=1)
                below.imshow(np.ma.masked_less_equal(heat, 0).T / max(float(heat.max()), 1e-12), origin="lower", cmap="hot",
                             vmin=0, vmax=1, alpha=0.6)
                below.set_title("saliency", fontsize=7)
        row[0].text(-0.15, 0.5, variant, transform=row[0].transAxes, rotation=90, va="center", ha="right", fontsize=8)
    fig.suptitle(title + ("; below each: |gradient x input| of its score" if saliency else ""), fontsize=9)
    save_figure(fig, png, pdf)


def filtered_candidates(candidates: pd.DataFrame, swi: dict[str, str], regions: dict[str, str], title: str,
                        png: str, pdf: str, n_slices: int = 3, per_subject: int = 40) -> None:
    """Among each subject's ``per_subject`` best candidates, the subject with most removed by
    anatomical filtering: the ``n_slices`` axial slices holding most of them, SWI under the
    region map (colours), removed candidates as red crosses and kept ones as green circles
    (those within one slice)."""
    candidates = candidates.sort_values("score", ascending=False).groupby("subject").head(per_subject)
    removed = candidates[~candidates["kept"].astype(bool)]
    fig, axes = plt.subplots(1, n_slices, figsize=(3.6 * n_slices, 4.0), squeeze=False)
    for ax in axes[0]:
        ax.axis("off")
    if removed.empty:
        axes[0, 0].text(0.5, 0.5, "no candidate removed", ha="center", va="center", transform=axes[0, 0].transAxes)
        fig.suptitle(title, fontsize=9)
        save_figure(fig, png, pdf)
        return
    key = str(removed["subject"].value_counts().index[0])
    image, affine = load_volume(swi[key])
    region_map, _ = load_volume(regions[key])
    mine = candidates[candidates["subject"].astype(str) == key]
    voxels = world_to_voxel(affine, mine[["x", "y", "z"]].to_numpy(float))
    kept = mine["kept"].astype(bool).to_numpy()
    slices = pd.Series(np.rint(voxels[~kept, 2]).astype(int)).value_counts().index[:n_slices]
    for ax, k in zip(axes[0], sorted(slices)):
        ax.imshow(image[:, :, k].T, origin="lower", cmap="gray", vmin=0, vmax=1)
        ax.imshow(np.ma.masked_equal(region_map[:, :, k], 0).T, origin="lower", cmap=REGION_COLOURS, vmin=0, vmax=3,
                  alpha=0.35, interpolation="nearest")
        near = np.abs(voxels[:, 2] - k) <= 1
        ax.scatter(voxels[near & ~kept, 0], voxels[near & ~kept, 1], marker="x", c="red", s=30, linewidths=1.2, label="removed")
        ax.scatter(voxels[near & kept, 0], voxels[near & kept, 1], marker="o", facecolors="none", edgecolors="lime", s=30,
                   linewidths=1.0, label="kept")
        ax.set_title(f"sub-{key}, slice {k}", fontsize=8)
    axes[0, 0].legend(fontsize=7, loc="lower left")
    fig.suptitle(f"{title} (orange lobar, green deep, red infratentorial)", fontsize=9)
    save_figure(fig, png, pdf)
