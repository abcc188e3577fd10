"""Feature vectors of true / false positives, false negatives and true negatives, and their
t-SNE embedding (the paper's Fig. 7).

At the operating point after anatomical filtering:

* **TP**: kept candidates scoring at least the threshold that hit a CMB;
* **FP**: the ``n_fp`` highest-scoring kept false positives per subject (the hard ones;
  at the operating point alone there are too few to show a cluster);
* **FN**: the CMBs no such TP found;
* **TN**: ``n_tn`` brain voxels per subject, drawn at least ``away_mm`` from every CMB and
  every candidate.

All four are read the same way (:func:`features_at`): the model runs on a patch of the
training patch size centred on the location (a candidate's box centre, a CMB's centre, the
drawn voxel), and the fused feature map is read at the patch centre. Inference does not keep
the feature map: its channels over whole volumes cost memory and copies, for a few dozen reads.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import torch
from scipy import ndimage
from sklearn.manifold import TSNE

from cmbflow.device import autocast
from cmbflow.io.coords import voxel_to_world, world_to_voxel
from cmbflow.io.model_input import PhaseScaling, load_model_input, model_inputs
from cmbflow.models.detector import CMBDetector
from cmbflow.models.retinanet import is_retinanet, level0_outputs
from cmbflow.training.patches import crop_patch

log = logging.getLogger(__name__)

KINDS = ("TP", "FP", "FN", "TN")


@torch.no_grad()
def features_at(model: CMBDetector, image: np.ndarray, voxels: np.ndarray, patch_size, batch: int = 4,
                cpu_bfloat16: bool = False) -> np.ndarray:
    """Fused feature vectors ``(N, F)`` at ``voxels (N, 3)`` (voxel indices of the model-ready
    grid of ``image (C, D, H, W)``), each from a patch of ``patch_size`` centred on it (the
    baseline's: its finest pyramid level's, at the patch centre); in the
    precision inference ran in (``cpu_bfloat16``, :func:`cmbflow.device.autocast`), so that these
    vectors and the candidates' come from the same arithmetic."""
    size = np.asarray(patch_size, int)
    centres = np.rint(np.asarray(voxels, float).reshape(-1, 3)).astype(int)
    out = []
    for first in range(0, len(centres), batch):
        chunk = centres[first:first + batch]
        patches = np.stack([crop_patch(image, centre - size // 2, size) for centre in chunk])
        with autocast(torch.device("cpu"), cpu_bfloat16):
            if is_retinanet(model):
                features = level0_outputs(model.eval(), torch.from_numpy(patches))[1]
            else:
                features = model.eval()(torch.from_numpy(patches)).features
        out.append(features[(slice(None), slice(None), *(s // 2 for s in features.shape[2:]))].float().numpy())
    if out:
        return np.concatenate(out)
    width = model.network.feature_extractor.out_channels if is_retinanet(model) else model.projections[0].out_channels
    return np.zeros((0, width), np.float32)


def negative_voxels(brain: np.ndarray, affine: np.ndarray, avoid_world: np.ndarray, spacing, away_mm: float,
                    n: int, rng: np.random.Generator) -> np.ndarray:
    """Up to ``n`` brain voxels (indices of the grid) at least ``away_mm`` from every point of
    ``avoid_world (M, 3)`` (world mm RAS+)."""
    free = brain.copy()
    if len(avoid_world):
        marks = np.zeros(brain.shape, bool)
        voxels = np.rint(world_to_voxel(affine, avoid_world)).astype(int)
        inside = np.all((voxels >= 0) & (voxels < brain.shape), axis=1)
        marks[tuple(voxels[inside].T)] = True
        free &= ndimage.distance_transform_edt(~marks, sampling=spacing) >= away_mm
    candidates = np.argwhere(free)
    return candidates[rng.choice(len(candidates), size=min(n, len(candidates)), replace=False)] if len(candidates) else candidates


def collect_vectors(model: CMBDetector, card: dict, subjects: dict[str, dict[str, str]], candidates: pd.DataFrame,
                    matched: pd.DataFrame, lesions: pd.DataFrame, threshold: float,
                    n_fp: int = 10, n_tn: int = 20, away_mm: float = 10.0, seed: int = 0,
                    cpu_bfloat16: bool = False) -> tuple[pd.DataFrame, np.ndarray]:
    """The four groups of :data:`KINDS` over a dataset's subjects (key -> preprocessed ``swi``,
    ``phase``, ``brainmask``). ``candidates`` is the localized candidate table; ``matched``
    and ``lesions`` come from the evaluation. ``cpu_bfloat16``: config
    ``detector.inference.cpu_bfloat16``, the precision the candidates were found in
    (:func:`features_at`). Returns ``(table, vectors)``: ``subject``, ``kind``, ``x, y, z``
    (world mm RAS+), ``score``."""
    rng = np.random.default_rng(seed)
    after = matched[matched["filter"] == "after"]
    patch = card["training"]["patch_size"]
    tables, vectors = [], []
    for key, files in subjects.items():
        mine = after[after["subject"].astype(str) == str(key)]
        tp = mine[(mine["outcome"] == "tp") & (mine["score"] >= threshold)]
        fp = mine[mine["outcome"] == "fp"].nlargest(n_fp, "score")
        cmbs = lesions[lesions["subject"].astype(str) == str(key)]
        missed = cmbs[~cmbs["lesion"].isin(tp["lesion"])]
        data = load_model_input(files, PhaseScaling.from_record(card.get("normalization"), f"model card of {card.get('name')}"), model_inputs(card))
        avoid = np.vstack([cmbs[["x", "y", "z"]].to_numpy(float).reshape(-1, 3),
                           candidates.loc[candidates["subject"].astype(str) == str(key), ["x", "y", "z"]].to_numpy(float)])
        tn_world = voxel_to_world(data.affine, negative_voxels(data.brain, data.affine, avoid, data.spacing, away_mm, n_tn, rng))
        for kind, chosen in (("TP", tp), ("FP", fp), ("FN", missed.assign(score=np.nan)),
                             ("TN", pd.DataFrame({"x": tn_world[:, 0], "y": tn_world[:, 1], "z": tn_world[:, 2], "score": np.nan}))):
            tables.append(chosen[["x", "y", "z", "score"]].assign(subject=str(key), kind=kind))
            world = chosen[["x", "y", "z"]].to_numpy(float).reshape(-1, 3)
            vectors.append(features_at(model, data.image, world_to_voxel(data.affine, world), patch, cpu_bfloat16=cpu_bfloat16))
    table = pd.concat(tables, ignore_index=True)[["subject", "kind", "x", "y", "z", "score"]]
    return table, np.concatenate(vectors).astype(np.float32)


def embed(vectors: np.ndarray, seed: int = 0) -> np.ndarray:
    """scikit-learn t-SNE of ``vectors (N, F)`` to 2-D (perplexity capped for small N)."""
    if len(vectors) < 5:
        return np.zeros((len(vectors), 2))
    perplexity = float(min(30.0, (len(vectors) - 1) / 3))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(vectors)
