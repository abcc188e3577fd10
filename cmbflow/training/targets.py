"""RPN targets: which anchors are CMBs, which are background, and the box codes to learn.

All boxes are voxel ``xyzxyz`` boxes of the patch (see :mod:`cmbflow.models.anchors`).
An anchor is **positive** when its IoU with a lesion box is at least ``positive_iou``, and
the best anchor of every lesion is positive whatever its IoU (a 2 mm CMB overlaps no anchor
much, and must not be left without one); **negative** below ``negative_iou``; ignored in
between (half-overlapping anchors teach nothing clear).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from monai.data.box_utils import box_iou

from cmbflow.models.anchors import anchors_at, anchors_overlapping
from cmbflow.models.postprocess import box_coder

POSITIVE, NEGATIVE, IGNORED = 1, 0, -1


@dataclass
class RpnTargets:
    labels: torch.Tensor  # (N,) int64: 1 positive, 0 negative, -1 ignored
    codes: torch.Tensor  # (N, 6) box codes of the matched lesion (meaningful where positive)
    matched: torch.Tensor  # (N,) index of the matched lesion, -1 where none


def assign_targets(shape: tuple[int, int, int], extents: torch.Tensor, lesions: torch.Tensor, positive_iou: float = 0.35,
                   negative_iou: float = 0.15) -> RpnTargets:
    """Targets for the anchors of :func:`cmbflow.models.anchors.make_anchors` ``(shape,
    extents)`` given ``lesions (G, 6)`` (G may be 0).

    IoUs are computed only for anchors that overlap some lesion box (a few thousand of a
    patch's ~170,000, found without building the others: :func:`anchors_overlapping`); every
    other anchor has IoU 0 and is negative. The same targets as the full ``(N, G)`` IoU matrix."""
    n = int(extents.shape[0]) * int(torch.tensor(shape).prod())
    labels = torch.zeros(n, dtype=torch.long)
    codes = torch.zeros(n, 6)
    matched = torch.full((n,), -1, dtype=torch.long)
    if lesions.shape[0] == 0:
        return RpnTargets(labels, codes, matched)
    near = anchors_overlapping(lesions, shape, extents)  # every lesion overlaps its own voxel's anchors
    anchors = anchors_at(near, shape, extents)
    iou = box_iou(anchors, lesions)  # (M, G)
    best_iou, best_lesion = iou.max(dim=1)
    near_labels = torch.full((near.numel(),), IGNORED, dtype=torch.long)
    near_labels[best_iou < negative_iou] = NEGATIVE
    near_labels[best_iou >= positive_iou] = POSITIVE
    best_anchor = iou.argmax(dim=0)  # (G,): the best anchor of every lesion is positive
    near_labels[best_anchor] = POSITIVE
    best_lesion[best_anchor] = torch.arange(lesions.shape[0])
    labels[near] = near_labels
    positive = near_labels == POSITIVE
    matched[near[positive]] = best_lesion[positive]
    codes[near[positive]] = box_coder().encode_single(lesions[best_lesion[positive]], anchors[positive]).float()
    return RpnTargets(labels, codes, matched)
