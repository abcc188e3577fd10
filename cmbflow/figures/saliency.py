"""Saliency of a detection: which input voxels moved the detector's score at a location.

Gradient x input (Simonyan et al. 2014; Shrikumar et al. 2016) of the best anchor's objectness
logit at the centre of a training-sized patch centred on the location. The gradient is MONAI's
:class:`monai.visualize.VanillaGrad`; the detector is wrapped so that its output is that one
score, the form MONAI's saliency classes expect of a classifier.
"""

from __future__ import annotations

import numpy as np
import torch
from monai.visualize import VanillaGrad

from cmbflow.models.detector import CMBDetector
from cmbflow.models.retinanet import is_retinanet, level0_outputs
from cmbflow.training.patches import crop_patch


class CentreScore(torch.nn.Module):
    """``detector``'s best anchor logit at the centre voxel of its input, shape ``(B, 1)``; for
    the baseline, at the centre of its finest pyramid level."""

    def __init__(self, detector: CMBDetector):
        super().__init__()
        self.detector = detector

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = level0_outputs(self.detector, x)[0] if is_retinanet(self.detector) else self.detector(x).logits  # (B, K, ...)
        centre = logits[(slice(None), slice(None), *(s // 2 for s in logits.shape[2:]))]
        return centre.max(dim=1, keepdim=True).values


def saliency_at(model: CMBDetector, image: np.ndarray, voxel, patch_size) -> np.ndarray:
    """|gradient x input| summed over the channels, on the patch of ``patch_size`` (voxels)
    centred on ``voxel`` (index of the model-ready grid of ``image (C, D, H, W)``); the patch
    centre is ``patch_size // 2``. Float32, in float32 arithmetic."""
    size = np.asarray(patch_size, int)
    centre = np.rint(np.asarray(voxel, float)).astype(int)
    x = torch.from_numpy(crop_patch(image, centre - size // 2, size)[None]).float()
    gradient = VanillaGrad(CentreScore(model.eval()))(x, index=0)
    return (gradient * x.detach()).abs().sum(dim=1)[0].numpy().astype(np.float32)
