"""Anchors of the RPN: cubes of a few diameters (mm) at every voxel of the output map.

Boxes here are in **voxel index space of the model-ready grid**, MONAI's ``xyzxyz``
(StandardMode) layout over the array axes ``(i, j, k)``: ``(i0, j0, k0, i1, j1, k1)`` with the
voxel centre at integer indices and a voxel spanning ``[n - 0.5, n + 0.5]``. A lesion of
diameter ``d`` mm spans ``d / spacing`` voxels along each axis (anisotropic voxels give
anisotropic boxes).
"""

from __future__ import annotations

import torch


def anchor_extents(diameters_mm, spacing_mm) -> torch.Tensor:
    """Extents in voxels ``(K, 3)`` of anchors of ``diameters_mm`` (K,) on a grid of ``spacing_mm`` (3,)."""
    diameters = torch.as_tensor(diameters_mm, dtype=torch.float32)
    spacing = torch.as_tensor(spacing_mm, dtype=torch.float32)
    if diameters.ndim != 1 or spacing.shape != (3,):
        raise ValueError(f"need diameters (K,) and spacing (3,), got {tuple(diameters.shape)} and {tuple(spacing.shape)}")
    return diameters[:, None] / spacing[None, :]


def make_anchors(shape: tuple[int, int, int], extents: torch.Tensor) -> torch.Tensor:
    """All anchors of a ``shape`` (D, H, W) map: ``(D * H * W * K, 6)`` boxes, location-major
    (index ``((i * H + j) * W + k) * K + a``), matching ``logits.permute(0, 2, 3, 4, 1)``."""
    n_anchors = int(extents.shape[0]) * int(torch.tensor(shape).prod())
    return anchors_at(torch.arange(n_anchors), shape, extents)


def anchors_at(indices: torch.Tensor, shape: tuple[int, int, int], extents: torch.Tensor) -> torch.Tensor:
    """The anchors ``(N, 6)`` at flat anchor ``indices`` (N,) of :func:`make_anchors`, without
    building all of them (a whole volume has tens of millions)."""
    n_kinds = extents.shape[0]
    location, kind = indices // n_kinds, indices % n_kinds
    d, h, w = shape
    centres = torch.stack([location // (h * w), (location // w) % h, location % w], dim=1).float()
    half = extents.float()[kind] / 2
    return torch.cat([centres - half, centres + half], dim=1)


def anchors_overlapping(boxes: torch.Tensor, shape: tuple[int, int, int], extents: torch.Tensor) -> torch.Tensor:
    """Flat indices (ascending) of the anchors of :func:`make_anchors` that overlap at least one
    of ``boxes (G, 6)`` (a positive volume in common): every other anchor has IoU 0 with them.
    Only the voxels each box can reach are tested (a few thousand of a training patch's
    ~170,000 anchors, about 1 ms against 23 ms for testing all), with the same comparisons on the
    same coordinates as a test of every anchor, so the same set is found."""
    n_kinds = int(extents.shape[0])
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long)
    half = extents.float()[None, :, :] / 2  # (1, K, 3)
    # an anchor centred on voxel v overlaps iff box_lo - half < v < box_hi + half; one voxel more
    # each way, so that rounding cannot leave a candidate out (the exact test below decides)
    low = torch.clamp(torch.floor(boxes.float()[:, None, :3] - half).long() - 1, min=0)  # (G, K, 3)
    high = torch.minimum(torch.ceil(boxes.float()[:, None, 3:] + half).long() + 1, torch.tensor(shape) - 1)
    strides = (shape[1] * shape[2], shape[2], 1)
    candidates = []
    for box_low, box_high in zip(low.tolist(), high.tolist()):
        for kind, (kind_low, kind_high) in enumerate(zip(box_low, box_high)):
            if any(b < a for a, b in zip(kind_low, kind_high)):
                continue
            i, j, k = (torch.arange(a, b + 1) * s for a, b, s in zip(kind_low, kind_high, strides))
            candidates.append((i[:, None, None] + j[None, :, None] + k[None, None, :]).flatten() * n_kinds + kind)
    if not candidates:
        return torch.zeros(0, dtype=torch.long)
    candidates = torch.unique(torch.cat(candidates))  # sorted
    anchors = anchors_at(candidates, shape, extents)
    overlaps = ((anchors[:, None, :3] < boxes[None, :, 3:]) & (anchors[:, None, 3:] > boxes[None, :, :3])).all(dim=2)
    return candidates[overlaps.any(dim=1)]


def boxes_from_centres(centres: torch.Tensor, diameters_mm: torch.Tensor, spacing_mm) -> torch.Tensor:
    """Boxes ``(N, 6)`` around voxel centres ``(N, 3)`` for lesions of ``diameters_mm`` (N,)."""
    half = diameters_mm.reshape(-1, 1) / torch.as_tensor(spacing_mm, dtype=torch.float32).reshape(1, 3) / 2
    return torch.cat([centres - half, centres + half], dim=-1)


def box_centres(boxes: torch.Tensor) -> torch.Tensor:
    """Voxel-index centres ``(N, 3)`` of boxes ``(N, 6)``."""
    return (boxes[:, :3] + boxes[:, 3:]) / 2


def box_diameters_mm(boxes: torch.Tensor, spacing_mm) -> torch.Tensor:
    """Diameter in mm ``(N,)`` of boxes ``(N, 6)``: the mean of their extents in mm."""
    extent_mm = (boxes[:, 3:] - boxes[:, :3]) * torch.as_tensor(spacing_mm, dtype=boxes.dtype).reshape(1, 3)
    return extent_mm.mean(dim=1)
