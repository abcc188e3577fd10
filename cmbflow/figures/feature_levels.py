"""Per-level decoder feature maps and the CMB probability map of a baseline detector and an
FFM detector at one CMB (the paper's Fig. 6).

Both models run on the same patch (the training patch size) centred on the CMB; each
decoder level is shown as the mean absolute activation over its channels on the axial slice
through the CMB, at the level's own resolution.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from cmbflow.figures.evaluation import save_figure  # noqa: E402
from cmbflow.io.coords import world_to_voxel  # noqa: E402
from cmbflow.io.model_input import PhaseScaling, load_model_input, model_inputs  # noqa: E402
from cmbflow.models.weights import load_model  # noqa: E402
from cmbflow.training.patches import crop_patch  # noqa: E402


@torch.no_grad()
def level_maps(model, patch: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Axial mid-slices of each decoder level's mean |activation| (coarse to fine) and of the
    CMB probability (best anchor) for ``patch (C, D, H, W)``."""
    out = model.eval()(torch.from_numpy(patch[None]))
    maps = []
    for level in out.levels:
        volume = level[0].abs().mean(dim=0).numpy()
        maps.append(volume[:, :, volume.shape[2] // 2])
    probability = torch.sigmoid(out.logits[0]).amax(dim=0).numpy()
    return maps, probability[:, :, probability.shape[2] // 2]


def plot_feature_levels(models: dict[str, tuple[str, str]], files: dict[str, str], lesions: pd.DataFrame, subject: str,
                        png: str, pdf: str) -> None:
    """``models``: label -> (weights, card); ``files``: preprocessed ``swi``, ``phase``,
    ``brainmask`` of ``subject``; ``lesions``: its CMBs (``x, y, z`` world mm); the largest is shown."""
    loaded = {label: load_model(*paths) for label, paths in models.items()}
    cmb = lesions.sort_values("radius_mm", ascending=False).iloc[0]
    size = np.asarray(next(iter(loaded.values()))[1]["training"]["patch_size"], int)
    results = {}
    for label, (model, card) in loaded.items():  # each model sees the phase scaled as it was trained
        data = load_model_input(files, PhaseScaling.from_record(card.get("normalization"), f"model card of {card.get('name')}"), model_inputs(card))
        centre = np.rint(world_to_voxel(data.affine, np.array([[cmb.x, cmb.y, cmb.z]]))[0]).astype(int)
        patch = crop_patch(data.image, centre - size // 2, size)
        results[label] = level_maps(model, patch)
    n_levels = max(len(maps) for maps, _ in results.values())
    fig, axes = plt.subplots(len(results), n_levels + 2, figsize=(2.0 * (n_levels + 2), 2.2 * len(results)), squeeze=False)
    for row, (label, (maps, probability)) in zip(axes, results.items()):
        row[0].imshow(patch[0, :, :, size[2] // 2].T, origin="lower", cmap="gray", vmin=0, vmax=1)
        row[0].set_title(f"{label}: SWI", fontsize=7)
        for n, ax in enumerate(row[1:n_levels + 1]):
            if n < len(maps):
                ax.imshow(maps[n].T, origin="lower", cmap="magma")
                ax.set_title(f"decoder level {n + 1} ({maps[n].shape[0]}x{maps[n].shape[1]})", fontsize=7)
        row[-1].imshow(probability.T, origin="lower", cmap="viridis", vmin=0, vmax=1)
        row[-1].set_title(f"probability (max {probability.max():.2f})", fontsize=7)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(f"sub-{subject}: decoder levels at a CMB ({cmb.radius_mm:.1f} mm radius), baseline vs FFM", fontsize=9)
    save_figure(fig, png, pdf)
