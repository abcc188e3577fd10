"""Sliding-window inference over a whole model-ready volume, shared by the networks.

Windows overlap, and each voxel's output is taken from the one window it lies deepest in: the
overlap between two neighbouring windows is split at its middle (the U-Net's overlap-tile
strategy). Written here rather than with MONAI's ``sliding_window_inference`` because MONAI
blends every output channel of every window with an importance map (multiply, accumulate,
divide by the summed weights): with the detector's 21 full-resolution channels that was 2.3 s
of 8.6 s on the full-size benchmark volume, against ~0.3 s for one copy per voxel here. The
blend also mixed in the edge of a window, where the network sees truncated context; here every
voxel keeps at least half the overlap of context on every side (except at the volume's border).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from cmbflow.device import autocast


@dataclass(frozen=True)
class AxisTiles:
    """The windows along one axis (voxel indices of the padded volume): their common size, where
    each starts, and the ``[low, high)`` range each one owns (the ranges partition the axis)."""

    window: int
    starts: tuple[int, ...]
    owned: tuple[tuple[int, int], ...]


def axis_tiles(length: int, largest: int, step: int, overlap: float) -> AxisTiles:
    """Windows along an axis of ``length`` voxels (a multiple of ``step``): the fewest of at most
    ``largest`` voxels (``-1``: the whole axis) that cover it with at least ``overlap`` x
    ``largest`` voxels shared between neighbours, all of one size (a multiple of ``step``),
    spread evenly; each owns its part of the axis up to the middle of its overlaps. A fixed
    window would waste up to half its voxels on a volume just larger than it; these tile it."""
    if largest == -1 or length <= largest:
        return AxisTiles(length, (0,), ((0, length),))
    shared = overlap * largest
    count = int(np.ceil((length - shared) / (largest - shared)))
    window = min(int(np.ceil((length + (count - 1) * shared) / count / step)) * step, largest)
    starts = [int(round(n * (length - window) / (count - 1))) for n in range(count)]
    cuts = [0, *((low + high + window) // 2 for low, high in zip(starts[:-1], starts[1:])), length]
    return AxisTiles(window, tuple(starts), tuple(zip(cuts[:-1], cuts[1:])))


def window_tiles(shape, max_roi, divisor, overlap: float) -> list[AxisTiles]:
    """:func:`axis_tiles` for every axis of a volume of ``shape`` (a multiple of ``divisor``)."""
    return [axis_tiles(int(length), int(largest), int(step), overlap) for length, largest, step in zip(shape, max_roi, divisor)]


@torch.no_grad()
def sliding_window(predictor: Callable, image: np.ndarray, max_roi, overlap: float, divisor, device: torch.device,
                   sw_batch_size: int = 1, cpu_bfloat16: bool = False,
                   add_into: tuple[np.ndarray, ...] | None = None) -> tuple[torch.Tensor, ...] | None:
    """Apply ``predictor`` (a ``(B, C, *roi)`` batch of windows -> a tuple of ``(B, C_out, *roi)``
    tensors) over ``image (C, D, H, W)``; returns each output as ``(C_out, D, H, W)`` float32 on the CPU
    (a view of a channels-last buffer: memory in ``D, H, W, C_out`` order).

    The image is read as if zero-padded at the far end of each axis to a multiple of ``divisor``
    (so voxel indices stay put; outputs cover the volume itself); windows are :func:`window_tiles` of at
    most ``max_roi`` (``-1``: the whole axis), ``sw_batch_size`` per forward pass, each voxel's
    output from the window that owns it; mixed precision on CUDA, and on the CPU with
    ``cpu_bfloat16`` (:func:`cmbflow.device.autocast`). ``image`` may be any numpy view (a
    flipped one, nibabel's Fortran order): each window is copied out of it once, straight into
    the batch, in channels-last order (the networks' own); no padded copy of the volume is made.

    With ``add_into`` (one float32 ``(D, H, W, C_out)`` array per output, any numpy view, e.g. a
    flipped view of outputs returned before), each voxel's output is added to it in float32
    instead, and nothing is returned: a second pass is summed without a second volume of outputs.
    """
    if any(n != -1 and n % d for n, d in zip(max_roi, divisor)):
        raise ValueError(f"roi_size {tuple(max_roi)} must be -1 or a multiple of the network's divisor {tuple(divisor)} per axis")
    shape = image.shape[1:]
    padded = tuple(-(-n // d) * d for n, d in zip(shape, divisor))
    tiles = window_tiles(padded, max_roi, divisor, overlap)
    windows = list(itertools.product(*(zip(axis.starts, axis.owned) for axis in tiles)))
    outputs = None
    with autocast(device, cpu_bfloat16):
        for first in range(0, len(windows), sw_batch_size):
            batch = windows[first:first + sw_batch_size]
            # a padded copy of the whole volume cost more than the copies of the windows out of it
            # (fresh memory: the full-size volume's 0.7 s a pass here)
            inputs = torch.empty((len(batch), image.shape[0], *(axis.window for axis in tiles)), dtype=torch.float32,
                                 memory_format=torch.channels_last_3d).zero_()
            target = inputs.numpy()  # a view: numpy copies from any strides, negative ones too
            for n, window in enumerate(batch):
                source = tuple(slice(start, min(start + axis.window, length)) for (start, _), axis, length in zip(window, tiles, shape))
                target[(n, slice(None), *(slice(0, part.stop - part.start) for part in source))] = image[(slice(None), *source)]
            results = predictor(inputs.to(device))
            if outputs is None:  # sized from the first outputs: each network has its own channels
                # channels last, as the networks write them: each window's copy reads and writes in
                # the same order (a channels-first buffer took 10 % of a detection job)
                outputs = add_into or [torch.empty((*shape, result.shape[1]), dtype=torch.float32) for result in results]
            for n, window in enumerate(batch):
                owned = _owned_voxels(window, shape)
                if owned is None:
                    continue  # the window owns padding only
                where, inside = owned
                for out, result in zip(outputs, results):
                    part = result[n].permute(1, 2, 3, 0)[(*inside, slice(None))]
                    if add_into is None:
                        out[where].copy_(part)  # to float32 CPU in one copy
                    else:  # float32 sums, as a separate add of two output volumes would give, bit for bit
                        np.add(out[where], part.float().cpu().numpy(), out=out[where])
    if add_into is not None:
        return None
    return tuple(out.permute(3, 0, 1, 2) for out in outputs)


def _owned_voxels(window, shape) -> tuple[tuple[slice, ...], tuple[slice, ...]] | None:
    """``(where, inside)``: the voxels of the unpadded volume of ``shape`` that ``window`` (one
    ``(start, (low, high))`` per axis) owns, and the same voxels within the window; None where
    it owns padding only."""
    ends = [min(high, length) for (_, (_, high)), length in zip(window, shape)]
    if any(low >= end for (_, (low, _)), end in zip(window, ends)):
        return None
    where = tuple(slice(low, end) for (_, (low, _)), end in zip(window, ends))
    inside = tuple(slice(low - start, end - start) for (start, (low, _)), end in zip(window, ends))
    return where, inside
