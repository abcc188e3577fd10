"""Hard Sample Prototype Learning: learnable class prototypes and the concentration loss.

After Convolutional Prototype Learning (Yang et al., CVPR 2018): each sampled feature vector
is pulled towards the prototype of its class, ``L_con = mean ||f - m_y||^2``. The classes
(:data:`CLASSES`): background (random negative locations), CMB (locations of positive
anchors), mimic (hard negatives: the highest-scoring locations that are not CMBs, e.g.
veins and calcifications). The classification loss keeps the classes apart; the
concentration loss makes each compact, so CMB and mimic features separate.
"""

from __future__ import annotations

import torch
from torch import nn

CLASSES = {"background": 0, "cmb": 1, "mimic": 2}


class Prototypes(nn.Module):
    """One learnable prototype ``(feature_dim,)`` per class of :data:`CLASSES`."""

    def __init__(self, feature_dim: int, n_classes: int = len(CLASSES), seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.prototypes = nn.Parameter(0.1 * torch.randn(n_classes, feature_dim, generator=generator))

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return concentration_loss(features, labels, self.prototypes)


def concentration_loss(features: torch.Tensor, labels: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """Mean squared distance of features ``(N, F)`` to the prototypes ``(C, F)`` of their
    classes ``labels`` ``(N,)`` (int); 0 for an empty batch."""
    if features.ndim != 2 or features.shape[1] != prototypes.shape[1] or labels.shape != features.shape[:1]:
        raise ValueError(f"need features (N, F), labels (N,), prototypes (C, F); got {tuple(features.shape)}, "
                         f"{tuple(labels.shape)}, {tuple(prototypes.shape)}")
    if features.shape[0] == 0:
        return features.sum() * 0.0
    return ((features - prototypes[labels]) ** 2).sum(dim=1).mean()
