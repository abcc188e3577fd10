"""The coordinate-aware localization network: MONAI's 3-D U-Net on image + coordinate channels.

Input ``(B, C, D, H, W)``: normalized SWI magnitude (and, optionally, phase), then the three
template-space coordinate channels of :mod:`cmbflow.localization.coordinates`. Output
``(B, 4, D, H, W)`` logits of outside / lobar / deep / infratentorial
(:data:`cmbflow.atlas.REGION_NAMES`). ``D, H, W`` must be multiples of :func:`divisor`.
The coordinates let a small network tell a deep from a lobar voxel of the same intensity by
where it is, as the reference method's localization U-Net does.

MARS regions are tens of millimetres across, so the U-Net runs on the input average-pooled
by ``pool`` voxels per axis (2 x 2 x 1: 2 mm isotropic on the default 1 x 1 x 2 mm grid) and
its logits are interpolated back: four times fewer voxels, twice the field of view per patch.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from monai.networks.nets import UNet

from cmbflow.atlas import REGION_NAMES

N_COORDINATES = 3


class Localizer(torch.nn.Module):
    """Average pooling by ``pool``, a MONAI UNet (residual units, batch norm; one output per
    MARS class), trilinear interpolation of the logits back to the input size."""

    def __init__(self, in_channels: int, channels=(8, 16, 32, 64), strides=(2, 2, 2), pool=(2, 2, 1)):
        super().__init__()
        self.pool = tuple(int(p) for p in pool)
        self.unet = UNet(spatial_dims=3, in_channels=in_channels, out_channels=len(REGION_NAMES), channels=tuple(channels),
                         strides=tuple(strides), num_res_units=1, norm="batch")

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if self.pool == (1, 1, 1):
            return self.unet(image)
        logits = self.unet(F.avg_pool3d(image, self.pool, self.pool))
        return F.interpolate(logits, size=image.shape[2:], mode="trilinear", align_corners=False)


def build_localizer(in_channels: int, channels=(8, 16, 32, 64), strides=(2, 2, 2), pool=(2, 2, 1)) -> Localizer:
    return Localizer(in_channels, channels, strides, pool)


def divisor(strides, pool=(1, 1, 1)) -> tuple[int, int, int]:
    """Spatial sizes the network accepts are multiples of this, per axis."""
    factor = int(np.prod(strides))
    return tuple(int(p) * factor for p in pool)


def load_localizer(weights: str | Path, card: str | Path) -> tuple[Localizer, dict]:
    """The trained localizer (eval mode, CPU) and its card (:func:`cmbflow.models.weights.save_model`
    layout; weights loaded with ``weights_only=True``)."""
    card_content = json.loads(Path(card).read_text())
    model = build_localizer(**card_content["network"])
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True)["localizer"])
    return model.eval(), card_content
