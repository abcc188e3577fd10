"""Where the networks run: CUDA when present, else the CPU; seeded, deterministic training."""

from __future__ import annotations

import torch
from monai.utils import set_determinism


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def prepare_training(seed: int, device: torch.device | None = None) -> tuple[torch.device, bool]:
    """Seed torch, numpy and MONAI; deterministic algorithms on CPU. Returns the device
    (``device`` or :func:`default_device`) and whether to use mixed precision (CUDA)."""
    set_determinism(seed=seed)
    device = device or default_device()
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    return device, device.type == "cuda"


def settings_from_config(cls, options: dict):
    """A settings dataclass from a config mapping: unknown keys ignored, lists as tuples."""
    def tuples(value):
        return tuple(tuples(v) for v in value) if isinstance(value, list) else value
    return cls(**{k: tuples(v) for k, v in options.items() if k in cls.__dataclass_fields__})
