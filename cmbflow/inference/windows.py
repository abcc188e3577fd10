"""Sliding-window inference over a whole model-ready volume, shared by the networks.

MONAI's ``sliding_window_inference`` does the windows and the Gaussian blending; this module
pads the volume to the network's divisor and fits the window size to the volume.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from monai.inferers import sliding_window_inference

from cmbflow.device import autocast


def fitted_windows(shape, max_roi, divisor, overlap: float) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Window size and per-axis overlap for MONAI's sliding window over a volume of ``shape``
    (a multiple of ``divisor``): along each axis the fewest windows of at most ``max_roi``
    voxels (``-1``: the whole axis) that cover it with at least ``overlap`` shared, all of one
    size (a multiple of ``divisor``). A fixed window wastes up to half its voxels on a volume
    just larger than it; these windows tile the volume instead.
    """
    windows, overlaps = [], []
    for length, largest, step in zip(shape, max_roi, divisor):
        if largest == -1 or length <= largest:
            windows.append(length)
            overlaps.append(0.0)
            continue
        shared = overlap * largest
        count = int(np.ceil((length - shared) / (largest - shared)))
        window = min(int(np.ceil((length + (count - 1) * shared) / count / step)) * step, largest)
        interval = int(np.ceil((length - window) / (count - 1)))  # MONAI: windows start every interval
        windows.append(window)
        overlaps.append(1.0 - interval / window)
    return tuple(windows), tuple(overlaps)


@torch.no_grad()
def sliding_window(predictor: Callable, image: np.ndarray, max_roi, overlap: float, divisor, device: torch.device,
                   sw_batch_size: int = 1, cpu_bfloat16: bool = False) -> tuple[torch.Tensor, ...]:
    """Apply ``predictor`` (a ``(1, C, *roi)`` window -> a tuple of ``(1, C_out, *roi)``
    tensors) over ``image (C, D, H, W)``; returns each output as ``(C_out, D, H, W)`` on the CPU.

    The image is zero-padded at the far end of each axis to a multiple of ``divisor`` (so
    voxel indices stay put; outputs are cropped back), windows are :func:`fitted_windows` of
    at most ``max_roi`` (``-1``: the whole axis); mixed precision on CUDA, and on the CPU with
    ``cpu_bfloat16`` (:func:`cmbflow.device.autocast`); the blended outputs are float32.
    """
    if any(n != -1 and n % d for n, d in zip(max_roi, divisor)):
        raise ValueError(f"roi_size {tuple(max_roi)} must be -1 or a multiple of the network's divisor {tuple(divisor)} per axis")
    shape = image.shape[1:]
    padded = np.zeros((image.shape[0], *(-(-n // d) * d for n, d in zip(shape, divisor))), np.float32)
    padded[(slice(None), *(slice(0, n) for n in shape))] = image
    roi, overlaps = fitted_windows(padded.shape[1:], max_roi, divisor, overlap)
    with autocast(device, cpu_bfloat16):
        outputs = sliding_window_inference(torch.from_numpy(padded)[None], roi, sw_batch_size, predictor, overlap=overlaps,
                                           mode="gaussian", sw_device=device, device=torch.device("cpu"))
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    crop = (0, slice(None), *(slice(0, n) for n in shape))
    return tuple(out[crop] for out in outputs)
