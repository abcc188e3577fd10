"""From network outputs to candidates: decode boxes against anchors, threshold, 3-D NMS
(MONAI's ``non_max_suppression`` on ``xyzxyz`` voxel boxes)."""

from __future__ import annotations

import torch
from monai.apps.detection.utils.box_coder import BoxCoder
from monai.data.box_utils import non_max_suppression

from cmbflow.models.anchors import anchors_at

BOX_CODER_WEIGHTS = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)


def box_coder() -> BoxCoder:
    """The one box coder of training and inference (centre offsets / anchor size, log sizes)."""
    return BoxCoder(weights=BOX_CODER_WEIGHTS, boxes_xform_clip=4.0)


def flatten_outputs(logits: torch.Tensor, deltas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``logits (K, D, H, W)``, ``deltas (K, 6, D, H, W)`` of one image -> ``(L*K,)`` and
    ``(L*K, 6)`` in the order of :func:`cmbflow.models.anchors.make_anchors`."""
    flat_logits = logits.permute(1, 2, 3, 0).reshape(-1)
    flat_deltas = deltas.permute(2, 3, 4, 0, 1).reshape(-1, 6)
    return flat_logits, flat_deltas


def select_candidates(logits: torch.Tensor, deltas: torch.Tensor, extents: torch.Tensor, score_threshold: float,
                      nms_iou: float, max_candidates: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Candidates of one image: ``(boxes (N, 6) voxel xyzxyz, scores (N,) in 0..1, anchor
    indices (N,))``, best first, after score threshold and NMS.

    ``logits (K, D, H, W)``, ``deltas (K, 6, D, H, W)`` as in :func:`flatten_outputs`;
    ``extents (K, 3)`` the anchor sizes in voxels (:func:`~cmbflow.models.anchors.anchor_extents`).
    Only the anchors above the threshold are built.
    """
    n_kinds, *shape = logits.shape
    flat_logits = logits.permute(1, 2, 3, 0).reshape(-1)
    keep = torch.nonzero(flat_logits >= torch.logit(torch.tensor(score_threshold)).clamp(min=-30.0)).flatten()
    if keep.numel() > 20 * max_candidates:  # NMS is quadratic: pre-select the best
        keep = keep[flat_logits[keep].topk(20 * max_candidates).indices]
    scores = torch.sigmoid(flat_logits[keep].float())
    location, kind = keep // n_kinds, keep % n_kinds
    voxel = torch.unravel_index(location, tuple(shape))
    codes = deltas[(kind, slice(None), *voxel)] if keep.numel() else deltas.new_zeros(0, 6)  # (N, 6), no full copy
    boxes = box_coder().decode_single(codes.reshape(-1, 6).float(), anchors_at(keep, tuple(shape), extents))
    order = non_max_suppression(boxes, scores, nms_iou, max_proposals=max_candidates)
    order = torch.as_tensor(order, dtype=torch.long)
    return boxes[order], scores[order], keep[order]
