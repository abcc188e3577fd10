"""Registration QC: three orthogonal slices of the normalized SWI with the warped MARS
atlas outlined and the CMB markers circled."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from cmbflow.atlas import REGION_NAMES  # noqa: E402
from cmbflow.preprocessing.grid import Grid  # noqa: E402

REGION_LINE_COLOURS = {1: "tab:orange", 2: "tab:green", 3: "tab:red"}
# (array axis fixed by the view, horizontal axis, vertical axis, title); the grid is RAS+-aligned.
VIEWS = ((2, 0, 1, "axial"), (1, 0, 2, "coronal"), (0, 1, 2, "sagittal"))


def _slice_point(markers: pd.DataFrame, brainmask: np.ndarray) -> np.ndarray:
    """Voxel through which to cut: the largest CMB, else the brain's centre."""
    if len(markers):
        order = markers["radius_mm"].fillna(0).to_numpy().argsort()[::-1] if "radius_mm" in markers else [0]
        return np.rint(markers[["i", "j", "k"]].to_numpy(float)[order[0]]).astype(int)
    return np.rint(np.argwhere(brainmask > 0).mean(axis=0)).astype(int)


def registration_qc(swi: np.ndarray, regions: np.ndarray, brainmask: np.ndarray, grid: Grid,
                    markers: pd.DataFrame, out_png: str, title: str) -> None:
    """Write the QC figure. Arrays are on ``grid`` (model-ready, RAS+-aligned); ``markers``
    carry voxel indices ``i j k`` of that grid. Markers within 1.5 voxels of a slice are circled."""
    spacing = grid.spacing
    centre = np.clip(_slice_point(markers, brainmask), 0, np.array(swi.shape) - 1)
    ijk = markers[["i", "j", "k"]].to_numpy(float) if len(markers) else np.zeros((0, 3))
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.4))
    for ax, (fixed, horizontal, vertical, name) in zip(axes, VIEWS):
        index = [slice(None)] * 3
        index[fixed] = centre[fixed]
        extent = (-0.5 * spacing[horizontal], (swi.shape[horizontal] - 0.5) * spacing[horizontal],
                  -0.5 * spacing[vertical], (swi.shape[vertical] - 0.5) * spacing[vertical])
        ax.imshow(swi[tuple(index)].T, origin="lower", cmap="gray", vmin=0, vmax=1.2, extent=extent)
        labels = regions[tuple(index)].T
        h = (np.arange(labels.shape[1])) * spacing[horizontal]
        v = (np.arange(labels.shape[0])) * spacing[vertical]
        for code, colour in REGION_LINE_COLOURS.items():
            if (labels == code).any():
                ax.contour(h, v, (labels == code).astype(float), levels=[0.5], colors=colour, linewidths=0.8)
        near = ijk[np.abs(ijk[:, fixed] - centre[fixed]) <= 1.5]
        ax.scatter(near[:, horizontal] * spacing[horizontal], near[:, vertical] * spacing[vertical], s=180,
                   facecolors="none", edgecolors="yellow", linewidths=1.4)
        ax.set_title(f"{name}, slice {centre[fixed]}", fontsize=9)
        ax.set_axis_off()
    handles = [plt.Line2D([], [], color=c, label=REGION_NAMES[k]) for k, c in REGION_LINE_COLOURS.items()]
    handles.append(plt.Line2D([], [], marker="o", color="yellow", markerfacecolor="none", linestyle="none", label="CMB marker"))
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(out_png, dpi=90)
    plt.close(fig)
