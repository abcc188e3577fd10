"""The CMB detector: a 3-D U-Net backbone with an RPN head, and optionally the Feature
Fusion Module (FFM) of the reference method.

Shapes: input ``(B, 2, D, H, W)`` (normalized SWI magnitude, phase) on the model-ready grid;
``D, H, W`` must be multiples of :attr:`CMBDetector.divisor`. Outputs at full resolution:
``logits (B, K, D, H, W)`` objectness per anchor, ``deltas (B, K, 6, D, H, W)`` box offsets
(MONAI ``BoxCoder`` codes, voxel space), ``features (B, F, D, H, W)`` the map both heads read.

Without FFM the feature map is the last decoder level (projected to ``F`` channels). With
FFM the last three decoder levels are each projected to ``F`` channels by a 1x1x1 convolution,
upsampled (trilinear) to full resolution and **summed**, as in the paper's figure: coarser
levels bring context (a vessel continues, a calcification has the opposite phase) to every
location of the final map.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from monai.networks.blocks.dynunet_block import UnetResBlock, UnetUpBlock
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

# Batch norm: in eval mode a fixed per-channel affine map, so a voxel's output does not depend
# on the window around it (instance norm would normalize 48-voxel training patches and
# 160-voxel inference windows differently), and cheap at inference.
NORM = "batch"
FUSED_LEVELS = 3


@dataclass
class DetectorOutput:
    logits: torch.Tensor  # (B, K, D, H, W)
    deltas: torch.Tensor  # (B, K, 6, D, H, W)
    features: torch.Tensor  # (B, F, D, H, W)
    levels: list  # decoder outputs, coarse to fine, for figures


class CMBDetector(nn.Module):
    """3-D U-Net + RPN head (see module docstring).

    ``channels``: encoder widths per level; ``strides``: per level (first is usually 1), one
    ``(si, sj, sk)`` each, e.g. ``(2, 2, 1)`` to pool in-plane only while slices are thick;
    ``feature_dim``: channels of the fused map. Widths and strides have no default here: the
    config schema holds them (``detector.network``), and a trained model's card holds its own.
    """

    def __init__(self, *, channels, strides, feature_dim: int, in_channels: int = 2, n_anchors: int = 3,
                 fuse_levels: bool = True):
        super().__init__()
        if len(channels) != len(strides) or len(channels) < FUSED_LEVELS + 1:
            raise ValueError(f"need one stride per level and at least {FUSED_LEVELS + 1} levels; got channels {channels}, strides {strides}")
        self.fuse_levels = fuse_levels
        self.n_anchors = n_anchors
        self.divisor = tuple(int(v) for v in np.prod(np.array(strides), axis=0))
        self.encoder = nn.ModuleList()
        previous = in_channels
        for width, stride in zip(channels, strides):
            self.encoder.append(UnetResBlock(3, previous, width, kernel_size=3, stride=stride, norm_name=NORM))
            previous = width
        self.decoder = nn.ModuleList()
        for level in range(len(channels) - 1, 0, -1):
            self.decoder.append(UnetUpBlock(3, channels[level], channels[level - 1], kernel_size=3, stride=1,
                                            upsample_kernel_size=strides[level], norm_name=NORM))
        used = channels[:FUSED_LEVELS][::-1] if fuse_levels else channels[:1]  # widths of the fused decoder outputs
        self.projections = nn.ModuleList(nn.Conv3d(width, feature_dim, kernel_size=1) for width in used)
        # 1x1x1: the map is already contextual (U-Net, FFM); a 3x3x3 here would be the costliest
        # layer of the network, as it runs at full resolution.
        self.head = nn.Sequential(nn.Conv3d(feature_dim, feature_dim, kernel_size=1), nn.LeakyReLU(0.01, inplace=True))
        self.objectness = nn.Conv3d(feature_dim, n_anchors, kernel_size=1)
        self.regression = nn.Conv3d(feature_dim, 6 * n_anchors, kernel_size=1)
        nn.init.constant_(self.objectness.bias, -4.6)  # prior 1 %: CMBs are rare, start from "no"
        nn.init.zeros_(self.regression.weight)
        nn.init.zeros_(self.regression.bias)

    def forward(self, x: torch.Tensor) -> DetectorOutput:
        if any(n % d for n, d in zip(x.shape[2:], self.divisor)):
            raise ValueError(f"input spatial shape {tuple(x.shape[2:])} must be a multiple of {self.divisor}")
        skips = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
        levels = []
        for block, skip in zip(self.decoder, reversed(skips[:-1])):
            x = block(x, skip)
            levels.append(x)
        used = levels[-FUSED_LEVELS:] if self.fuse_levels else levels[-1:]
        size = levels[-1].shape[2:]
        features = self.projections[-1](used[-1])  # the full-resolution level
        for project, level in zip(self.projections[:-1], used[:-1]):
            upsampled = F.interpolate(project(level), size=size, mode="trilinear", align_corners=False)
            # in place where the precisions agree: the same sum without a new full-resolution
            # buffer per level (half the time of the add on a CPU; the convolution's backward
            # pass does not read its output)
            features = features.add_(upsampled) if upsampled.dtype == features.dtype else features + upsampled
        hidden = self.head(features)
        batch = x.shape[0]
        deltas = self.regression(hidden).reshape(batch, self.n_anchors, 6, *size)
        return DetectorOutput(self.objectness(hidden), deltas, features, levels)


def folded_for_inference(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode with every batch norm folded into the convolution
    before it (torch's ``fuse_conv_bn_eval``): the same function up to rounding, one pass
    over each full-resolution map less per norm. MONAI's U-Net blocks pair ``convN`` (a
    ``Convolution`` holding ``conv``) with ``normN``; the copy holds an identity in place of
    each folded norm. ``model`` itself is left as it is (it may train on)."""
    folded = copy.deepcopy(model).eval()
    for block in folded.modules():
        for name, norm in list(block.named_children()):
            if not (name.startswith("norm") and isinstance(norm, nn.BatchNorm3d)):
                continue
            conv = getattr(block, "conv" + name[len("norm"):], None)
            inner = getattr(conv, "conv", None)
            if isinstance(inner, nn.Conv3d):
                conv.conv = fuse_conv_bn_eval(inner, norm)
                setattr(block, name, nn.Identity())
    return folded
