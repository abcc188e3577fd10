"""The one training loop of every network (the detector, its fine-tuning and the localizer).

A network's code gives a ``step`` (one batch's losses) and a ``validation_loss``; the loop owns
what they share: AdamW with a cosine decay to 0 (a short CPU training ends on small, settled
steps), mixed precision with a gradient scaler on CUDA, the curves (mean training losses and a
validation loss every ``validation_every`` iterations), a progress bar, and checkpoints that a
killed job resumes from.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from cmbflow.logs import progress

log = logging.getLogger(__name__)
CHECKPOINT_FORMAT = 2  # checkpoints of another layout are ignored, never half-loaded


@dataclass(frozen=True)
class Schedule:
    """How long and how fast a network trains, and how often it is measured and saved."""

    iterations: int
    learning_rate: float
    weight_decay: float
    validation_every: int
    checkpoint_every: int = 0  # 0: no checkpoints


def fingerprint(*parts) -> str:
    """What a checkpoint must have been made with to be resumed: a hash of JSON-able ``parts``
    (the settings, with the iteration count that sets the learning-rate schedule; the subject
    keys; a tag such as the parent weights' hash of a fine-tuning)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _save_checkpoint(path: Path, modules: dict[str, torch.nn.Module], optimizer, decay, iteration: int, rows: list,
                     fingerprint: str) -> None:
    """Atomic checkpoint (write then rename): a job killed mid-write leaves the previous one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"format": CHECKPOINT_FORMAT, "modules": {name: m.state_dict() for name, m in modules.items()},
             "optimizer": optimizer.state_dict(), "schedule": decay.state_dict(), "iteration": iteration,
             "curves": pd.DataFrame(rows).to_dict("list"), "fingerprint": fingerprint}
    temporary = path.with_suffix(".tmp")
    torch.save(state, temporary)
    os.replace(temporary, path)


def _resumable(path: Path | None, fingerprint: str, device: torch.device) -> dict | None:
    if path is None or not path.exists():
        return None
    saved = torch.load(path, map_location=device, weights_only=True)
    if saved.get("format") != CHECKPOINT_FORMAT or saved.get("fingerprint") != fingerprint:
        log.warning("ignoring %s: it was written with other settings, subjects or code", path)
        return None
    return saved


def train(modules: dict[str, torch.nn.Module], make_step: Callable[[int], Callable[[], dict]],
          validation_loss: Callable[[], float], schedule: Schedule, device: torch.device, amp: bool,
          checkpoint: str | Path | None = None, fingerprint: str = "", show_progress: bool = False,
          label: str = "training") -> pd.DataFrame:
    """Train ``modules`` (name -> module, on ``device``; all their parameters) in place and
    return the curves: ``iteration``, ``train_loss``, ``train_<part>`` of every other part the
    step returns, ``validation_loss``.

    ``make_step(start)`` is called once, with the iteration training starts from (0, or where a
    checkpoint left off: patch samplers reseed from it), and returns ``step()``: one batch's
    forward pass (under :func:`cmbflow.device.autocast`), returning ``{"loss": tensor, part:
    float, ...}``. ``validation_loss()``: the validation loss of the current weights (NaN
    without validation data), called every ``schedule.validation_every`` iterations and at the
    end. ``checkpoint``: a file outside the job's outputs, resumed from when it holds the same
    ``fingerprint``, written every ``schedule.checkpoint_every`` iterations, removed at the end."""
    parameters = [p for module in modules.values() for p in module.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=schedule.learning_rate, weight_decay=schedule.weight_decay)
    decay = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=schedule.iterations)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    start, rows = 0, []
    saved = _resumable(checkpoint, fingerprint, device)
    if saved is not None:
        for name, module in modules.items():
            module.load_state_dict(saved["modules"][name])
        optimizer.load_state_dict(saved["optimizer"])
        decay.load_state_dict(saved["schedule"])
        start, rows = int(saved["iteration"]), pd.DataFrame(saved["curves"]).to_dict("records")
        log.info("resumed from %s at iteration %d", checkpoint, start)
    step = make_step(start)
    running: list[dict] = []
    for iteration in progress(range(start, schedule.iterations), show_progress, label):
        for module in modules.values():
            module.train()
        parts = step()
        loss = float(parts["loss"].detach())
        if not np.isfinite(loss):  # stop before a NaN reaches the weights, the curves and the card
            raise FloatingPointError(f"{label}: the loss is {loss} at iteration {iteration + 1}. In bfloat16 on the CPU "
                                     "(detector.training.cpu_bfloat16) small patches can overflow: set it to false, or "
                                     "lower the learning rate")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(parts["loss"]).backward()
        scaler.step(optimizer)
        scaler.update()
        decay.step()
        running.append({"loss": loss, **{k: float(v) for k, v in parts.items() if k != "loss"}})
        done = iteration + 1
        if done % schedule.validation_every == 0 or done == schedule.iterations:
            for module in modules.values():
                module.eval()
            with torch.no_grad():
                validation = validation_loss()
            rows.append({"iteration": done, **{f"train_{k}": float(np.mean([r[k] for r in running])) for k in running[0]},
                         "validation_loss": validation})
            running = []
            log.info("%s iteration %d: train %.4f, validation %.4f", label, done, rows[-1]["train_loss"], validation)
        if checkpoint is not None and schedule.checkpoint_every and done % schedule.checkpoint_every == 0 \
                and done < schedule.iterations:
            _save_checkpoint(checkpoint, modules, optimizer, decay, done, rows, fingerprint)
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)  # done: a later run with other settings must start afresh
    return pd.DataFrame(rows)
