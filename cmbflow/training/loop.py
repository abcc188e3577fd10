"""The training loop of one detector variant: patches, loss, validation, checkpoints, curves.

* Deterministic on CPU for a fixed seed (torch, numpy and MONAI seeded; deterministic
  algorithms). A resumed run continues from the checkpoint's weights and optimizer state,
  with the patch stream re-seeded from ``(seed, iteration)``.
* CUDA is used when present, with mixed precision (``torch.autocast`` + ``GradScaler``).
* Validation: a fixed set of un-augmented patches from the held-back training subjects,
  drawn once with the seed; its loss is logged with the training loss (the curves).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cmbflow.device import autocast, prepare_training, settings_from_config
from cmbflow.logs import progress
from cmbflow.models.anchors import anchor_extents, make_anchors
from cmbflow.models.detector import CMBDetector
from cmbflow.models.prototypes import Prototypes
from cmbflow.training.losses import detection_loss
from cmbflow.training.patches import PatchSampler, SubjectVolumes
from cmbflow.training.targets import assign_targets

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainSettings:
    """Training parameters of one variant (config ``detector``; see config.yaml)."""

    fuse_levels: bool = True
    hspl: bool = True
    inputs: tuple[str, ...] = ("swi", "phase")  # image channels read, in order; ("swi",): datasets without phase
    anchors_mm: tuple[float, ...] = (3.0, 5.0, 8.0)
    channels: tuple[int, ...] = (8, 16, 32, 64)
    strides: tuple[tuple[int, int, int], ...] = ((1, 1, 1), (2, 2, 1), (2, 2, 2), (2, 2, 2))
    feature_dim: int = 16
    patch_size: tuple[int, int, int] = (48, 48, 24)
    batch_size: int = 4
    iterations: int = 800
    learning_rate: float = 2e-3
    weight_decay: float = 1e-5
    cmb_fraction: float = 0.6
    mimic_fraction: float = 0.2
    mimic_closing_mm: float = 7.0
    mimic_share: float = 0.005
    weight_con: float = 0.1
    n_hard: int = 8
    n_background: int = 16
    positive_iou: float = 0.35
    negative_iou: float = 0.15
    validation_every: int = 50
    validation_patches: int = 16
    checkpoint_every: int = 50
    seed: int = 0

    @classmethod
    def from_config(cls, options: dict) -> "TrainSettings":
        return settings_from_config(cls, options)


def build_model(settings: TrainSettings) -> CMBDetector:
    """The detector of a variant, untrained."""
    return CMBDetector(in_channels=len(settings.inputs), channels=settings.channels, strides=settings.strides, n_anchors=len(settings.anchors_mm),
                       feature_dim=settings.feature_dim, fuse_levels=settings.fuse_levels)


def patch_sampler(subjects: list[SubjectVolumes], settings: TrainSettings, seed: int, augment: bool = True) -> PatchSampler:
    """The patch sampler of ``settings`` over ``subjects``."""
    return PatchSampler(subjects, settings.patch_size, settings.cmb_fraction, seed=seed, augment=augment,
                        mimic_fraction=settings.mimic_fraction, mimic_closing_mm=settings.mimic_closing_mm,
                        mimic_share=settings.mimic_share)


def _batch(samples: list[dict], anchors: torch.Tensor, settings: TrainSettings, device: torch.device):
    images = torch.stack([s["image"] for s in samples]).to(device).contiguous(memory_format=torch.channels_last_3d)
    targets = [assign_targets(anchors, s["boxes"], settings.positive_iou, settings.negative_iou) for s in samples]
    targets = [type(t)(t.labels.to(device), t.codes.to(device), t.matched.to(device)) for t in targets]
    return images, targets


def train_detector(train: list[SubjectVolumes], validation: list[SubjectVolumes], settings: TrainSettings,
                   checkpoint: str | Path, show_progress: bool = False, device: torch.device | None = None,
                   initial_state: dict | None = None, tag: str = "") -> tuple[dict, pd.DataFrame]:
    """Train one variant; returns ``(state, curves)`` where ``state`` holds the ``detector``
    and (HSPL) ``prototypes`` state_dicts. ``checkpoint``: a file outside the job's outputs,
    written every ``checkpoint_every`` iterations and resumed from when present and made with
    the same settings, subjects and ``tag`` (else ignored), removed when training ends.
    ``device``: CUDA when present unless given. ``initial_state``: weights to start from
    (fine-tuning; same layout as the returned state), else a fresh network."""
    wrong = [s.key for s in [*train, *validation] if s.image.shape[0] != len(settings.inputs)]
    if wrong:
        raise ValueError(f"subjects {wrong[:5]} do not have the {len(settings.inputs)} input channel(s) "
                         f"({', '.join(settings.inputs)}) of the settings")
    device, amp = prepare_training(settings.seed, device)
    spacing = train[0].spacing
    anchors = make_anchors(settings.patch_size, anchor_extents(settings.anchors_mm, spacing)).to(device)
    model = build_model(settings)
    prototypes = Prototypes(settings.feature_dim, seed=settings.seed) if settings.hspl else None
    if initial_state is not None:
        model.load_state_dict(initial_state["detector"])
        if prototypes is not None:
            prototypes.load_state_dict(initial_state["prototypes"])
    model = model.to(device, memory_format=torch.channels_last_3d)  # faster 3-D convolutions
    prototypes = prototypes.to(device) if prototypes is not None else None
    parameters = [*model.parameters(), *(prototypes.parameters() if prototypes is not None else [])]
    optimizer = torch.optim.AdamW(parameters, lr=settings.learning_rate, weight_decay=settings.weight_decay)
    # Cosine decay to 0 (as the localizer): a short CPU training ends on small, settled steps.
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=settings.iterations)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    start, rows = 0, []
    checkpoint = Path(checkpoint)
    fingerprint = run_fingerprint(settings, train, validation, tag)
    saved = torch.load(checkpoint, map_location=device, weights_only=True) if checkpoint.exists() else None
    if saved is not None and saved.get("fingerprint") != fingerprint:
        log.warning("ignoring %s: it was written with other settings or subjects", checkpoint)
        saved = None
    if saved is not None:
        model.load_state_dict(saved["detector"])
        if prototypes is not None:
            prototypes.load_state_dict(saved["prototypes"])
        optimizer.load_state_dict(saved["optimizer"])
        schedule.load_state_dict(saved["schedule"])
        start, rows = int(saved["iteration"]), pd.DataFrame(saved["curves"]).to_dict("records")
        log.info("resumed from %s at iteration %d", checkpoint, start)
    sampler = patch_sampler(train, settings, seed=settings.seed * 100_003 + start)
    validation_samples = patch_sampler(validation, settings, seed=settings.seed + 1, augment=False) if validation else None
    fixed_validation = [validation_samples.sample() for _ in range(settings.validation_patches)] if validation_samples else []
    generator = torch.Generator().manual_seed(settings.seed)
    running = []
    log.info("training on %s: %d subjects (%d lesions), %d validation subjects, %d iterations from %d",
             device, len(train), len(sampler.lesions), len(validation), settings.iterations, start)
    for iteration in progress(range(start, settings.iterations), show_progress, "training"):
        model.train()
        images, targets = _batch([sampler.sample() for _ in range(settings.batch_size)], anchors, settings, device)
        with autocast(device):
            out = model(images)
        parts = detection_loss(out.logits, out.deltas, out.features, targets, prototypes,
                               settings.weight_con if settings.hspl else 0.0, settings.n_hard, settings.n_background, generator)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(parts.total).backward()
        scaler.step(optimizer)
        scaler.update()
        schedule.step()
        running.append((float(parts.total.detach()), parts.cls, parts.reg, parts.con))
        done = iteration + 1
        if done % settings.validation_every == 0 or done == settings.iterations:
            mean = np.mean(running, axis=0)
            rows.append({"iteration": done, "train_loss": mean[0], "train_cls": mean[1], "train_reg": mean[2],
                         "train_con": mean[3], "validation_loss": _validation_loss(model, prototypes, fixed_validation,
                                                                                   anchors, settings, device)})
            running = []
            log.info("iteration %d: train %.4f, validation %.4f", done, rows[-1]["train_loss"], rows[-1]["validation_loss"])
        if done % settings.checkpoint_every == 0 and done < settings.iterations:
            _save_checkpoint(checkpoint, model, prototypes, optimizer, schedule, done, rows, fingerprint)
    checkpoint.unlink(missing_ok=True)  # done: a later run with other settings must start afresh
    state = {"detector": model.state_dict()}
    if prototypes is not None:
        state["prototypes"] = prototypes.state_dict()
    return {k: {n: t.detach().cpu() for n, t in v.items()} for k, v in state.items()}, pd.DataFrame(rows)


@torch.no_grad()
def _validation_loss(model, prototypes, samples, anchors, settings, device) -> float:
    if not samples:
        return float("nan")
    model.eval()
    losses = []
    for start in range(0, len(samples), settings.batch_size):
        images, targets = _batch(samples[start : start + settings.batch_size], anchors, settings, device)
        with autocast(device):
            out = model(images)
        parts = detection_loss(out.logits, out.deltas, out.features, targets, prototypes,
                               settings.weight_con if settings.hspl else 0.0, settings.n_hard, settings.n_background,
                               torch.Generator().manual_seed(0))
        losses.append(float(parts.total))
    return float(np.mean(losses))


def run_fingerprint(settings: TrainSettings, train: list[SubjectVolumes], validation: list[SubjectVolumes],
                    tag: str = "") -> str:
    """What a checkpoint must have been made with to be resumed: settings (the iteration
    count too: it sets the learning-rate schedule), subject keys and ``tag`` (e.g. the parent
    weights' hash of a fine-tuning)."""
    record = asdict(settings)
    text = json.dumps([record, [s.key for s in train], [s.key for s in validation], tag], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _save_checkpoint(path: Path, model, prototypes, optimizer, schedule, iteration: int, rows: list, fingerprint: str) -> None:
    """Atomic checkpoint (write then rename): a job killed mid-write leaves the previous one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"detector": model.state_dict(), "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
             "iteration": iteration,
             "curves": pd.DataFrame(rows).to_dict("list"), "fingerprint": fingerprint}
    if prototypes is not None:
        state["prototypes"] = prototypes.state_dict()
    temporary = path.with_suffix(".tmp")
    torch.save(state, temporary)
    os.replace(temporary, path)


def settings_record(settings: TrainSettings) -> dict:
    """Settings as plain JSON-able values (for the model card)."""
    return asdict(settings)
