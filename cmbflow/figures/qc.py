"""QC overview of a cohort: SWI, phase and region map through each subject's first CMB."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from cmbflow.io.coords import world_to_voxel  # noqa: E402
from cmbflow.io.nifti import load_volume  # noqa: E402
from cmbflow.io.phase import phase_to_radians  # noqa: E402

REGION_COLOURS = matplotlib.colors.ListedColormap(["black", "tab:orange", "tab:green", "tab:red"])


def cohort_overview(subjects: list[dict], out_png: str, title: str) -> None:
    """One row per subject: SWI, phase and true MARS regions on the axial slice of its first
    CMB (mid slice without one), markers circled. ``subjects``: dicts with keys ``name``,
    ``magnitude``, ``phase``, ``regions``, ``markers`` (paths)."""
    fig, axes = plt.subplots(len(subjects), 3, figsize=(9, 3.2 * len(subjects)), squeeze=False)
    for row, subject in zip(axes, subjects):
        swi, affine = load_volume(subject["magnitude"])
        phase, _ = phase_to_radians(load_volume(subject["phase"])[0], source=subject["phase"])
        regions, _ = load_volume(subject["regions"])
        markers = pd.read_csv(subject["markers"], sep="\t")
        ijk = world_to_voxel(affine, markers[["x", "y", "z"]].to_numpy(float)) if len(markers) else np.zeros((0, 3))
        k = int(np.rint(ijk[0, 2])) if len(ijk) else swi.shape[2] // 2
        on_slice = ijk[np.abs(ijk[:, 2] - k) <= 1] if len(ijk) else ijk
        vmax = np.percentile(swi, 99.5)
        for ax, image, kwargs, label in (
            (row[0], swi, {"cmap": "gray", "vmin": 0, "vmax": vmax}, "SWI"),
            (row[1], phase, {"cmap": "gray", "vmin": -1, "vmax": 1}, "phase (rad)"),
            (row[2], regions, {"cmap": REGION_COLOURS, "vmin": 0, "vmax": 3, "interpolation": "nearest"}, "MARS regions"),
        ):
            ax.imshow(image[:, :, k].T, origin="lower", **kwargs)
            ax.scatter(on_slice[:, 0], on_slice[:, 1], s=160, facecolors="none", edgecolors="yellow", linewidths=1.2)
            ax.set_title(f"{subject['name']} {label}, slice {k}", fontsize=8)
            ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out_png, dpi=90)
    plt.close(fig)
