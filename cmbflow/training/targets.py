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

from cmbflow.models.postprocess import box_coder

POSITIVE, NEGATIVE, IGNORED = 1, 0, -1


@dataclass
class RpnTargets:
    labels: torch.Tensor  # (N,) int64: 1 positive, 0 negative, -1 ignored
    codes: torch.Tensor  # (N, 6) box codes of the matched lesion (meaningful where positive)
    matched: torch.Tensor  # (N,) index of the matched lesion, -1 where none


def assign_targets(anchors: torch.Tensor, lesions: torch.Tensor, positive_iou: float = 0.35,
                   negative_iou: float = 0.15) -> RpnTargets:
    """Targets for ``anchors (N, 6)`` given ``lesions (G, 6)`` (G may be 0)."""
    n = anchors.shape[0]
    if lesions.shape[0] == 0:
        return RpnTargets(torch.zeros(n, dtype=torch.long), torch.zeros(n, 6), torch.full((n,), -1, dtype=torch.long))
    iou = box_iou(anchors, lesions)  # (N, G)
    best_iou, matched = iou.max(dim=1)
    labels = torch.full((n,), IGNORED, dtype=torch.long)
    labels[best_iou < negative_iou] = NEGATIVE
    labels[best_iou >= positive_iou] = POSITIVE
    best_anchor = iou.argmax(dim=0)  # (G,)
    labels[best_anchor] = POSITIVE
    matched[best_anchor] = torch.arange(lesions.shape[0])
    codes = box_coder().encode_single(lesions[matched], anchors)
    matched = torch.where(labels == POSITIVE, matched, torch.full_like(matched, -1))
    return RpnTargets(labels, codes, matched)
