"""The coordinate-aware localization network: MONAI's 3-D U-Net on image + coordinate channels.

Input ``(B, C, D, H, W)``: normalized SWI magnitude (and, optionally, phase), then the three
template-space coordinate channels of :mod:`cmbflow.localization.coordinates`. Output
``(B, 4, D, H, W)`` logits of outside / lobar / deep / infratentorial
(:data:`cmbflow.atlas.REGION_NAMES`). ``D, H, W`` must be multiples of :func:`divisor`.
The coordinates let a small network tell a deep from a lobar voxel of the same intensity by
where it is, as the reference method's localization U-Net does.
"""

from __future__ import annotations

import numpy as np
from monai.networks.nets import UNet

from cmbflow.atlas import REGION_NAMES

N_COORDINATES = 3


def build_localizer(in_channels: int, channels=(8, 16, 32, 64), strides=(2, 2, 2)) -> UNet:
    """A MONAI UNet (residual units, batch norm) with one output per MARS class."""
    return UNet(spatial_dims=3, in_channels=in_channels, out_channels=len(REGION_NAMES), channels=tuple(channels),
                strides=tuple(strides), num_res_units=1, norm="batch")


def divisor(strides) -> tuple[int, int, int]:
    """Spatial sizes the network accepts are multiples of this, per axis."""
    factor = int(np.prod(strides))
    return (factor, factor, factor)
