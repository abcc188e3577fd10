"""Where the networks run: CUDA when present, else the CPU; seeded, deterministic training;
mixed precision (float16 on CUDA; bfloat16 inference on CPUs with native bfloat16 units)."""

from __future__ import annotations

import ctypes
import functools
import platform

import torch
from monai.utils import set_determinism


# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4


def prepare_cpu(threads: int) -> None:
    """Set up a job that runs a network: ``threads`` torch threads, and glibc's malloc told to
    keep freed memory in the process (no ``mmap`` for large blocks, the heap trimmed only past
    2 GB free). The networks free and allocate their activations again for every window and
    step; handed back to the system, each came back as new pages the kernel zeroes on first
    touch: a quarter of a full-size detection here (8.4 -> 6.1 s, the same candidates). Intel's
    advice for PyTorch on CPUs is another allocator (jemalloc, tcmalloc) for the same reason;
    this needs none. Elsewhere than glibc (macOS, musl) only the threads are set."""
    torch.set_num_threads(threads)
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_MMAP_MAX, 0)
        libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1)


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@functools.cache
def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX, via oneDNN). Elsewhere
    bfloat16 is emulated, slower than float32, so autocast stays off there."""
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def autocast(device: torch.device, cpu_bfloat16: bool = False) -> torch.autocast:
    """Mixed precision for ``device``: float16 autocast on CUDA (with a ``GradScaler`` when
    training); on the CPU bfloat16 autocast when ``cpu_bfloat16`` and the CPU has it, else
    float32. Convolutions run in the low precision; reductions and losses stay float32
    (autocast's own lists), and so do the sliding-window buffers (MONAI's).

    CPU training is float32 by default (``detector.training.cpu_bfloat16``): oneDNN's bfloat16
    weight gradients of convolutions over very small maps (2 voxels a side, as in the tests'
    tiny patches) differ from run to run; at the default patch size (48 x 48 x 24, deepest map 6
    a side) five steps gave the same weights in three runs. The forward pass (inference) is
    deterministic."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=cpu_bfloat16 and cpu_has_bf16())


def prepare_training(seed: int, device: torch.device | None = None) -> tuple[torch.device, bool]:
    """Seed torch, numpy and MONAI; deterministic algorithms on CPU. Returns the device
    (``device`` or :func:`default_device`) and whether to use mixed precision (CUDA)."""
    set_determinism(seed=seed)
    device = device or default_device()
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
        # Deterministic mode also fills every new tensor with NaN (to expose reads of memory never
        # written): 8 % of a training step here, and no kernel reads such memory, so the results
        # are the same bit for bit without it.
        torch.utils.deterministic.fill_uninitialized_memory = False
    return device, device.type == "cuda"

