"""From network outputs to candidates: decode boxes against anchors, threshold, 3-D NMS
(MONAI's ``non_max_suppression`` on ``xyzxyz`` voxel boxes)."""

from __future__ import annotations

import torch
from monai.apps.detection.utils.box_coder import BoxCoder
from monai.data.box_utils import non_max_suppression

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


def select_candidates(logits: torch.Tensor, deltas: torch.Tensor, anchors: torch.Tensor, score_threshold: float,
                      nms_iou: float, max_candidates: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Candidates of one image: ``(boxes (N, 6) voxel xyzxyz, scores (N,) in 0..1, anchor
    indices (N,))``, best first, after score threshold and NMS.

    ``logits`` / ``deltas`` as in :func:`flatten_outputs`, ``anchors (L*K, 6)``.
    """
    flat_logits, flat_deltas = flatten_outputs(logits, deltas)
    scores = torch.sigmoid(flat_logits.float())
    keep = torch.nonzero(scores >= score_threshold).flatten()
    if keep.numel() > 20 * max_candidates:  # NMS is quadratic: pre-select the best
        keep = keep[scores[keep].topk(20 * max_candidates).indices]
    boxes = box_coder().decode_single(flat_deltas[keep].float(), anchors[keep])
    order = non_max_suppression(boxes, scores[keep], nms_iou, max_proposals=max_candidates)
    order = torch.as_tensor(order, dtype=torch.long)
    return boxes[order], scores[keep][order], keep[order]
