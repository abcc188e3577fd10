"""The detector's loss: ``L = L_cls + L_reg + lambda * L_con``.

* ``L_cls``: sigmoid focal loss (MONAI, gamma 2) over positive and negative anchors, summed
  and divided by the number of positives, so CMB-free patches still teach "no".
* ``L_reg``: smooth L1 on the box codes of positive anchors, per positive.
* ``L_con`` (HSPL variant only): concentration loss of feature vectors sampled at CMB
  locations, at the ``n_hard`` highest-scoring negative locations (hard samples: mimics)
  and at ``n_background`` random negative locations, towards their class prototypes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from monai.losses import FocalLoss

from cmbflow.models.postprocess import flatten_outputs
from cmbflow.models.prototypes import CLASSES, Prototypes
from cmbflow.training.targets import NEGATIVE, POSITIVE, RpnTargets

# reduction "none" and our own sum: MONAI's "sum" averages over the last axis (kept for
# backward compatibility there), which would divide the loss by the number of anchors.
_FOCAL = FocalLoss(gamma=2.0, reduction="none", use_softmax=False)


@dataclass
class LossParts:
    total: torch.Tensor
    cls: float
    reg: float
    con: float


def sample_locations(labels: torch.Tensor, scores: torch.Tensor, n_anchors: int, n_hard: int, n_background: int,
                     generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Feature-map locations (flat voxel indices) and their prototype classes: every location
    with a positive anchor (CMB), the top-``n_hard`` scoring all-negative locations (mimic), and
    ``n_background`` random other all-negative locations (background)."""
    per_location = labels.reshape(-1, n_anchors)
    location_scores = scores.detach().reshape(-1, n_anchors).max(dim=1).values
    cmb = torch.nonzero((per_location == POSITIVE).any(dim=1)).flatten()
    negative = torch.nonzero((per_location == NEGATIVE).all(dim=1)).flatten()
    hard = negative[location_scores[negative].topk(min(n_hard, negative.numel())).indices]
    rest = negative[~torch.isin(negative, hard)]
    background = rest[torch.randperm(rest.numel(), generator=generator)[:n_background]]
    locations = torch.cat([cmb, hard, background])
    classes = torch.cat([torch.full_like(cmb, CLASSES["cmb"]), torch.full_like(hard, CLASSES["mimic"]),
                         torch.full_like(background, CLASSES["background"])])
    return locations, classes


def detection_loss(logits: torch.Tensor, deltas: torch.Tensor, features: torch.Tensor, targets: list[RpnTargets],
                   prototypes: Prototypes | None = None, weight_con: float = 0.0, n_hard: int = 8,
                   n_background: int = 16, generator: torch.Generator | None = None) -> LossParts:
    """Loss of a batch: ``logits (B, K, D, H, W)``, ``deltas (B, K, 6, D, H, W)``, ``features
    (B, F, D, H, W)``, one :class:`RpnTargets` per image (anchors of the patch). With
    ``prototypes`` and ``weight_con > 0`` the concentration loss is added (HSPL)."""
    cls_terms, reg_terms, con_terms = [], [], []
    n_anchors = logits.shape[1]
    # unbind, not logits[b]: the backward pass of an index allocates and zero-fills a gradient of
    # the whole batch per image, that of unbind stacks the images' gradients once
    per_image = zip(targets, logits.unbind(0), deltas.unbind(0), features.unbind(0))
    for target, image_logits, image_deltas, image_features in per_image:
        # deltas and features are read at a few anchors only: those are cast to float32, not the whole maps
        flat_logits, flat_deltas = flatten_outputs(image_logits.float(), image_deltas)
        used = target.labels >= 0
        positive = target.labels == POSITIVE
        n_positive = max(int(positive.sum()), 1)
        cls_terms.append(_FOCAL(flat_logits[used][None], target.labels[used].float()[None]).sum() / n_positive)
        if positive.any():
            reg_terms.append(F.smooth_l1_loss(flat_deltas[positive].float(), target.codes[positive], beta=1 / 9, reduction="sum") / n_positive)
        if prototypes is not None and weight_con > 0:
            locations, classes = sample_locations(target.labels, torch.sigmoid(flat_logits), n_anchors, n_hard, n_background, generator)
            sampled = image_features.flatten(1)[:, locations].float().T  # (M, F)
            con_terms.append(prototypes(sampled, classes))
    cls = torch.stack(cls_terms).mean()
    reg = torch.stack(reg_terms).mean() if reg_terms else cls * 0.0
    con = torch.stack(con_terms).mean() if con_terms else cls * 0.0
    total = cls + reg + weight_con * con
    return LossParts(total, float(cls.detach()), float(reg.detach()), float(con.detach()))
