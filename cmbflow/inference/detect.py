"""Whole-volume detection: sliding-window inference (ours; the baseline: MONAI's RetinaNet
inferer), box decoding, 3-D NMS, and the candidates' positions on the user's original image.

The network runs on the model-ready grid (:mod:`cmbflow.preprocessing.grid`), which lives in
the subject's own world frame. A candidate's box centre (voxel of that grid) is mapped to
world mm RAS+ with the grid's affine and from there to a voxel of the original image with
the original affine; both maps are :mod:`cmbflow.io.coords`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
import torch
from scipy import ndimage

from cmbflow.io.coords import voxel_to_world, world_to_voxel
from cmbflow.io.model_input import PhaseScaling, load_model_input, model_inputs
from cmbflow.device import autocast, default_device
from cmbflow.inference.windows import sliding_window
from cmbflow.io.nifti import image_geometry, save_volume
from cmbflow.models.anchors import anchor_extents, box_centres, box_diameters_mm
from cmbflow.models.detector import CMBDetector, folded_for_inference
from cmbflow.models.postprocess import select_candidates
from cmbflow.models.retinanet import SIZE_DIVISIBLE, is_retinanet
from cmbflow.preprocessing.grid import Grid
from cmbflow.settings import FromConfig

CANDIDATE_COLUMNS = ["subject", "candidate", "x", "y", "z", "i", "j", "k", "score", "diameter_mm"]


@dataclass(frozen=True)
class InferenceSettings(FromConfig):
    """Sliding-window and candidate-selection parameters (config ``detector.inference``)."""

    section: ClassVar[str] = "detector.inference"
    ignored: ClassVar[tuple[str, ...]] = ("probability_maps", "threads")  # read by the inference rule

    roi_size: tuple[int, int, int]  # largest window; -1: the whole axis (slabs of thick slices)
    overlap: float
    sw_batch_size: int
    score_threshold: float  # low: the FROC is traced from the candidates' scores
    nms_iou: float
    max_candidates: int
    brain_margin_mm: float  # the search region: the brain mask grown by this (mm)
    tta_flips: tuple[int, ...]  # test-time augmentation: also run on the volume flipped along each of these axes
    cpu_bfloat16: bool  # bfloat16 autocast on CPUs with native bfloat16 (cmbflow.device.autocast); CUDA: float16


@dataclass
class VolumeOutputs:
    """Network outputs over a whole model-ready volume (voxel index space of that grid). The
    fused feature map is not among them: its ``feature_dim`` channels over the whole volume cost
    memory and copies (blended, when windows were, as long as the network), and only the t-SNE
    figure reads it, at a few dozen locations (:func:`cmbflow.evaluation.embedding.features_at`)."""

    logits: torch.Tensor  # (K, D, H, W)
    deltas: torch.Tensor  # (K, 6, D, H, W)

    def probability(self) -> np.ndarray:
        """Per-voxel CMB probability ``(D, H, W)``: the best anchor's score at each voxel."""
        return torch.sigmoid(self.logits.float()).amax(dim=0).numpy()


@torch.no_grad()
def predict_volume(model: CMBDetector, image: np.ndarray, settings: InferenceSettings,
                   device: torch.device | None = None) -> VolumeOutputs:
    """Run ``model`` over ``image (2, D, H, W)`` with :func:`cmbflow.inference.windows.sliding_window`
    (overlapping windows fitted to the volume, each voxel from the window it lies deepest in); mixed precision on
    CUDA, bfloat16 on the CPU with ``settings.cpu_bfloat16``. Outputs are float32 on the CPU."""
    device = device or default_device()
    # Batch norms folded into their convolutions (a copy: the caller's model is left as it is);
    # channels-last: the same arithmetic, ~1.4x faster 3-D convolutions on CPU (oneDNN) and GPU.
    model = folded_for_inference(model).to(device, memory_format=torch.channels_last_3d)
    n_anchors = model.n_anchors

    def predictor(window: torch.Tensor, flipped_axis: int | None = None):
        out = model(window.contiguous(memory_format=torch.channels_last_3d))
        deltas = out.deltas
        if flipped_axis is not None:  # back in the volume's orientation, the box centre's code along the axis changes sign
            deltas[:, :, flipped_axis].neg_()  # exact: a + (-b) is a - b
        return out.logits, deltas.flatten(1, 2)

    shape = image.shape[1:]
    window_settings = (settings.roi_size, settings.overlap, model.divisor, device, settings.sw_batch_size, settings.cpu_bfloat16)
    logits, deltas = sliding_window(predictor, image, *window_settings)
    for axis in settings.tta_flips:
        # the pass over the mirrored volume, each window's outputs added straight into the first
        # pass's (D, H, W, C) buffers through their mirrored numpy views: the same float32 sums as
        # adding a second volume of outputs, without it (~1 GB at full size)
        totals = tuple(np.flip(out.permute(1, 2, 3, 0).numpy(), axis) for out in (logits, deltas))
        sliding_window(lambda window, axis=axis: predictor(window, axis), np.flip(image, axis=1 + axis), *window_settings,
                       add_into=totals)
    # Mean over passes: logits (a mean in logit space) and box codes alike (one pass: as they are).
    if settings.tta_flips:
        for summed in (logits, deltas):
            summed.div_(1 + len(settings.tta_flips))
    return VolumeOutputs(logits, deltas.reshape(n_anchors, 6, *shape))


@dataclass
class BoxScores:
    """The baseline's outputs over a volume: its boxes (voxels of that volume) and scores. It has
    no dense map; :meth:`probability` paints each box with its score (the highest where boxes overlap)."""

    boxes: torch.Tensor  # (N, 6)
    scores: torch.Tensor  # (N,)
    shape: tuple[int, int, int]

    def probability(self) -> np.ndarray:
        out = np.zeros(self.shape, np.float32)
        for box, score in sorted(zip(self.boxes.tolist(), self.scores.tolist()), key=lambda pair: pair[1]):
            low = np.clip(np.floor(np.asarray(box[:3]) + 0.5).astype(int), 0, self.shape)
            high = np.clip(np.ceil(np.asarray(box[3:]) + 0.5).astype(int), 0, self.shape)
            out[tuple(slice(a, b) for a, b in zip(low, high))] = score
        return out


@torch.no_grad()
def predict_boxes(detector, image: np.ndarray, settings: InferenceSettings, device: torch.device | None = None) -> BoxScores:
    """MONAI's RetinaNet (the baseline) over ``image (C, D, H, W)``: its own sliding-window
    inferer (windows of ``settings.roi_size``, -1 the whole axis, rounded up to its size
    divisor; ``settings.overlap``, the LUNA16 bundle's constant blending), anchor decoding and box selector with our
    ``score_threshold``, ``nms_iou`` and ``max_candidates``; bfloat16 as ours. Test-time flips
    are not applied to it (its boxes would need merging, not averaging)."""
    device = device or default_device()
    detector = detector.to(device).eval()
    divisor = np.asarray(SIZE_DIVISIBLE)
    padded = -(-np.asarray(image.shape[1:]) // divisor) * divisor
    roi = [int(p) if r <= 0 or r >= p else int(-(-r // d) * d) for r, p, d in zip(settings.roi_size, padded, divisor)]
    detector.set_sliding_window_inferer(roi_size=roi, sw_batch_size=settings.sw_batch_size, overlap=settings.overlap,
                                        mode="constant", device="cpu", sw_device=device)
    detector.set_box_selector_parameters(score_thresh=settings.score_threshold, topk_candidates_per_level=1000,
                                         nms_thresh=settings.nms_iou, detections_per_img=settings.max_candidates)
    with autocast(device, settings.cpu_bfloat16):
        found = detector(torch.from_numpy(np.ascontiguousarray(image))[None].float(), use_inferer=True)[0]
    return BoxScores(found[detector.target_box_key].float().cpu(), found[detector.pred_score_key].float().cpu(),
                     tuple(int(n) for n in image.shape[1:]))


def box_candidates(outputs: BoxScores, brain: np.ndarray, spacing, settings: InferenceSettings) -> pd.DataFrame:
    """The baseline's candidates, best first, as :func:`detect_candidates` gives ours: box
    centres (voxels) no farther than ``brain_margin_mm`` outside ``brain``."""
    centres = box_centres(outputs.boxes).numpy().reshape(-1, 3)
    allowed = searched_voxels(brain, spacing, settings.brain_margin_mm)
    voxels = np.clip(np.rint(centres).astype(int), 0, np.asarray(brain.shape) - 1)
    keep = allowed[tuple(voxels.T)] if len(voxels) else np.zeros(0, bool)
    table = pd.DataFrame({"grid_i": centres[keep, 0], "grid_j": centres[keep, 1], "grid_k": centres[keep, 2],
                          "score": outputs.scores.numpy()[keep], "diameter_mm": box_diameters_mm(outputs.boxes[keep], spacing).numpy()})
    return table.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)


def margin_voxels(spacing, margin_mm: float) -> np.ndarray:
    """``margin_mm`` in whole voxels per axis of a grid of ``spacing`` mm."""
    return np.maximum(np.rint(margin_mm / np.asarray(spacing, float)), 0).astype(int)


def searched_voxels(brain: np.ndarray, spacing, margin_mm: float) -> np.ndarray:
    """Where a candidate may lie: ``brain`` grown by ``margin_mm`` per axis (a box dilation, separable)."""
    margin = margin_voxels(spacing, margin_mm)
    return ndimage.maximum_filter(brain.astype(np.uint8), size=tuple(2 * margin + 1)) > 0


def search_box(brain: np.ndarray, spacing, margin_mm: float) -> tuple[slice, slice, slice]:
    """Voxel bounding box (slices of the model-ready grid) of the searched region: ``brain``
    grown by ``margin_mm`` per axis, the only voxels where candidates are kept
    (:func:`detect_candidates`). The whole volume when ``brain`` is empty."""
    if not brain.any():
        return tuple(slice(0, n) for n in brain.shape)
    # per-axis projections: np.argwhere over a full-size volume took 0.6 s
    spans = [np.flatnonzero(brain.any(axis=tuple(other for other in range(brain.ndim) if other != axis)))
             for axis in range(brain.ndim)]
    margin = margin_voxels(spacing, margin_mm)
    low = np.maximum(np.array([span[0] for span in spans]) - margin, 0)
    high = np.minimum(np.array([span[-1] for span in spans]) + 1 + margin, brain.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(low, high))


def find_candidates(model: CMBDetector, image: np.ndarray, brain: np.ndarray, anchors_mm, spacing,
                    settings: InferenceSettings, device: torch.device | None = None
                    ) -> tuple[pd.DataFrame, VolumeOutputs, tuple[slice, slice, slice]]:
    """The network over the :func:`search_box` of ``image (C, D, H, W)`` and the candidates
    there (:func:`detect_candidates`; ``grid_i, grid_j, grid_k`` voxels of the whole grid).
    Air and head outside the box hold no candidate, so the network does not run there (37 % of
    the voxels of the benchmark's uncropped full-size volume; 0-3 % of a grid preprocessing
    already cropped to the head); every searched voxel keeps at least ``brain_margin_mm`` of
    the image around it as context. ``model``: ours or the baseline (:func:`predict_boxes`).
    Returns the table, the outputs over the box (with ``probability()``) and the box."""
    box = search_box(brain, spacing, settings.brain_margin_mm)
    if is_retinanet(model):  # the baseline: MONAI's own inferer and box selector
        outputs = predict_boxes(model, image[(slice(None), *box)], settings, device)
        table = box_candidates(outputs, brain[box], spacing, settings)
    else:
        outputs = predict_volume(model, image[(slice(None), *box)], settings, device)
        table = detect_candidates(outputs, brain[box], anchors_mm, spacing, settings)
    table[["grid_i", "grid_j", "grid_k"]] += np.array([part.start for part in box], float)
    return table, outputs, box


def detect_candidates(outputs: VolumeOutputs, brain: np.ndarray, anchors_mm, spacing,
                      settings: InferenceSettings) -> pd.DataFrame:
    """Candidates on the model-ready grid, best first: ``grid_i, grid_j, grid_k`` (box centre,
    voxel of the model-ready grid), ``score`` (0..1) and ``diameter_mm``. Locations farther
    than ``brain_margin_mm`` outside ``brain (D, H, W)`` are not considered (the skull and air
    hold no CMBs).
    """
    extents = anchor_extents(anchors_mm, spacing)
    logits = outputs.logits
    allowed = searched_voxels(brain, spacing, settings.brain_margin_mm)
    logits = logits.masked_fill(~torch.from_numpy(allowed)[None], float("-inf"))  # below any threshold
    boxes, scores, _ = select_candidates(logits, outputs.deltas, extents, settings.score_threshold,
                                         settings.nms_iou, settings.max_candidates)
    centres = box_centres(boxes).numpy()
    return pd.DataFrame({"grid_i": centres[:, 0], "grid_j": centres[:, 1], "grid_k": centres[:, 2],
                         "score": scores.numpy(), "diameter_mm": box_diameters_mm(boxes, spacing).numpy()})


def to_original_image(table: pd.DataFrame, grid_affine: np.ndarray, original_affine: np.ndarray) -> pd.DataFrame:
    """Add ``x, y, z`` (world mm RAS+) and ``i, j, k`` (continuous voxel of the original
    image) to a table with ``grid_i, grid_j, grid_k`` (voxel of the model-ready grid)."""
    grid_voxels = table[["grid_i", "grid_j", "grid_k"]].to_numpy(float).reshape(-1, 3)
    world = voxel_to_world(grid_affine, grid_voxels)
    original = world_to_voxel(original_affine, world)
    out = table.copy()
    out[["x", "y", "z"]] = world
    out[["i", "j", "k"]] = original
    return out


def candidate_table(subject: str, table: pd.DataFrame) -> pd.DataFrame:
    """The published columns (:data:`CANDIDATE_COLUMNS`); ``candidate`` is ``<subject>_<n>``,
    the key of the feature vectors."""
    out = table.copy()
    out.insert(0, "subject", subject)
    out.insert(1, "candidate", [f"{subject}_{n:03d}" for n in range(len(out))])
    return out[CANDIDATE_COLUMNS]


def check_spacing(card: dict, spacing, source: str) -> None:
    """The model-ready grid of ``source`` must have the spacing the model was trained at."""
    trained = np.asarray(card["spacing_mm"], float)
    if not np.allclose(trained, spacing, atol=1e-3):
        raise ValueError(f"{source}: voxel spacing {tuple(round(float(v), 4) for v in spacing)} mm, but the model "
                         f"'{card['name']}' was trained at {tuple(trained)} mm. Set preprocessing.target_spacing_mm "
                         f"to {list(trained)} so that preprocessing resamples to the model's spacing.")


def detect_subject(model: CMBDetector, card: dict, subject: str, files: dict[str, str], original: str,
                   settings: InferenceSettings, device: torch.device | None = None,
                   probability_map: str | None = None) -> pd.DataFrame:
    """Candidates of one subject (:data:`CANDIDATE_COLUMNS`; ``x, y, z`` world mm RAS+ and
    ``i, j, k`` voxel of the ``original`` image). With ``probability_map`` a path, also
    writes the CMB probability on the original grid."""
    scaling = PhaseScaling.from_record(card.get("normalization"), f"model card of {card.get('name')}")
    data = load_model_input(files, scaling, model_inputs(card), threads=torch.get_num_threads())  # the job's threads (prepare_cpu)
    check_spacing(card, data.spacing, files["swi"])
    table, outputs, box = find_candidates(model, data.image, data.brain, card["anchors_mm"], data.spacing, settings, device)
    shape, affine = image_geometry(original)
    table = to_original_image(table, data.affine, affine)
    if probability_map:
        grid = Grid(affine, shape)
        from cmbflow.preprocessing.resample import resample_to_grid  # here: ANTs takes seconds to import, most runs write no map

        probability = np.zeros(data.brain.shape, np.float32)  # 0 outside the searched box
        probability[box] = outputs.probability()
        save_volume(probability_map, resample_to_grid(probability, data.affine, grid, "linear"), affine,
                    dtype=np.float32)
    return candidate_table(subject, table)
