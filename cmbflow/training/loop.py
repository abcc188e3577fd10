"""The training loop of one detector variant: patches, loss, validation, checkpoints, curves.

* Deterministic on CPU for a fixed seed (torch, numpy and MONAI seeded; deterministic
  algorithms). A resumed run continues from the checkpoint's weights and optimizer state,
  with the patch stream re-seeded from ``(seed, iteration)``.
* CUDA is used when present, with mixed precision (``torch.autocast`` + ``GradScaler``).
* Validation: a fixed set of un-augmented patches from the held-back training subjects,
  drawn once with the seed; its loss is logged with the training loss (the curves).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import torch

from cmbflow.device import autocast, prepare_training
from cmbflow.models.anchors import anchor_extents
from cmbflow.models.detector import CMBDetector
from cmbflow.models.prototypes import Prototypes
from cmbflow.models.retinanet import build_retinanet
from cmbflow.training import engine
from cmbflow.settings import FromConfig, schema_defaults
from cmbflow.training.losses import detection_loss
from cmbflow.training.patches import PatchSampler, SubjectVolumes
from cmbflow.training.targets import assign_targets

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainSettings(FromConfig):
    """Training parameters of one variant: config ``detector``'s ``anchors_mm``, ``network``,
    ``training`` and ``variants.<name>`` together (:func:`cmbflow.training.variant.variant_settings`)."""

    section: ClassVar[str] = "detector"
    ignored: ClassVar[tuple[str, ...]] = ("threads", "validation_fraction")  # the job's; the subjects' split

    architecture: str  # cmbflow: ours (CMBDetector); retinanet: MONAI's RetinaNet, the baseline (cmbflow.models.retinanet)
    retinanet_depth: int  # the baseline's ResNet depth (config detector.retinanet.depth)
    retinanet_hard_negative_pool: float  # its hard-negative sampler's pool (config detector.retinanet.hard_negative_pool)
    fuse_levels: bool
    hspl: bool
    inputs: tuple[str, ...]  # image channels read, in order; ("swi",): datasets without phase
    anchors_mm: tuple[float, ...]
    channels: tuple[int, ...]
    strides: tuple[tuple[int, int, int], ...]
    feature_dim: int
    patch_size: tuple[int, int, int]
    batch_size: int
    iterations: int
    learning_rate: float
    weight_decay: float
    cmb_fraction: float
    mimic_fraction: float
    mimic_closing_mm: float
    mimic_share: float
    masked_background: float
    masked_margin_mm: tuple[float, float]
    weight_con: float
    n_hard: int
    n_background: int
    positive_iou: float
    negative_iou: float
    validation_every: int
    validation_patches: int
    checkpoint_every: int
    cpu_bfloat16: bool  # bfloat16 autocast of the forward passes on the CPU (cmbflow.device.autocast); CUDA: float16 anyway
    seed: int

    @classmethod
    def default_options(cls) -> dict:
        """The schema's defaults, flattened (the full variant, FFM + HSPL, on SWI and phase)."""
        return flat_options(schema_defaults("detector"), "rpn_ffm_hspl")


def flat_options(detector: dict, variant: str) -> dict:
    """Config ``detector`` flattened for :class:`TrainSettings`: anchors, the baseline's keys
    (``retinanet_<key>``), network and training keys, then the switches of ``variant`` over the schema's variant defaults."""
    return {"anchors_mm": detector["anchors_mm"], **{f"retinanet_{k}": v for k, v in detector["retinanet"].items()}, **detector["network"],
            **detector["training"], **schema_defaults("detector.variants.*"), **detector["variants"][variant]}


def build_model(settings: TrainSettings, spacing) -> torch.nn.Module:
    """The detector of a variant, untrained, for a grid of ``spacing`` mm (the baseline's anchor
    shapes are voxels)."""
    if settings.architecture == "retinanet":
        return build_retinanet(len(settings.inputs), settings.anchors_mm, spacing, depth=settings.retinanet_depth,
                               hard_negative_pool=settings.retinanet_hard_negative_pool)
    return CMBDetector(in_channels=len(settings.inputs), channels=settings.channels, strides=settings.strides, n_anchors=len(settings.anchors_mm),
                       feature_dim=settings.feature_dim, fuse_levels=settings.fuse_levels)


def patch_sampler(subjects: list[SubjectVolumes], settings: TrainSettings, seed: int, augment: bool = True) -> PatchSampler:
    """The patch sampler of ``settings`` over ``subjects``."""
    return PatchSampler(subjects, settings.patch_size, settings.cmb_fraction, seed=seed, augment=augment,
                        mimic_fraction=settings.mimic_fraction, mimic_closing_mm=settings.mimic_closing_mm,
                        mimic_share=settings.mimic_share, masked_background=settings.masked_background,
                        masked_margin_mm=settings.masked_margin_mm)


def _batch(samples: list[dict], extents: torch.Tensor, settings: TrainSettings, device: torch.device):
    images = torch.stack([s["image"] for s in samples]).to(device).contiguous(memory_format=torch.channels_last_3d)
    targets = [assign_targets(tuple(settings.patch_size), extents, s["boxes"], settings.positive_iou, settings.negative_iou)
               for s in samples]
    targets = [type(t)(t.labels.to(device), t.codes.to(device), t.matched.to(device)) for t in targets]
    return images, targets


def train_detector(train: list[SubjectVolumes], validation: list[SubjectVolumes], settings: TrainSettings,
                   checkpoint: str | Path, show_progress: bool = False, device: torch.device | None = None,
                   initial_state: dict | None = None, tag: str = "") -> tuple[dict, pd.DataFrame]:
    """Train one variant (:func:`cmbflow.training.engine.train`); returns ``(state, curves)``
    where ``state`` holds the ``detector`` and (HSPL) ``prototypes`` state_dicts. ``checkpoint``:
    a file outside the job's outputs, resumed from when made with the same settings, subjects
    and ``tag`` (else ignored), removed when training ends. ``device``: CUDA when present unless
    given. ``initial_state``: weights to start from (fine-tuning; same layout as the returned
    state), else a fresh network."""
    wrong = [s.key for s in [*train, *validation] if s.image.shape[0] != len(settings.inputs)]
    if wrong:
        raise ValueError(f"subjects {wrong[:5]} do not have the {len(settings.inputs)} input channel(s) "
                         f"({', '.join(settings.inputs)}) of the settings")
    if settings.architecture == "retinanet" and (settings.hspl or settings.fuse_levels):
        raise ValueError("the retinanet architecture has no Feature Fusion Module or prototypes: set fuse_levels and hspl "
                         "to false in its detector.variants entry")
    device, amp = prepare_training(settings.seed, device)
    modules = {"detector": build_model(settings, train[0].spacing)}
    if settings.hspl:
        modules["prototypes"] = Prototypes(settings.feature_dim, seed=settings.seed)
    if initial_state is not None:
        for name, module in modules.items():
            module.load_state_dict(initial_state[name])
    modules = {name: module.to(device) for name, module in modules.items()}
    validation_sampler = patch_sampler(validation, settings, seed=settings.seed + 1, augment=False) if validation else None
    fixed_validation = [validation_sampler.sample() for _ in range(settings.validation_patches)] if validation_sampler else []
    batch_loss = (_retinanet_loss if settings.architecture == "retinanet" else _anchor_loss)(modules, settings, train[0], device)

    def make_step(start: int):
        sampler = patch_sampler(train, settings, seed=settings.seed * 100_003 + start)
        log.info("training %s on %s: %d subjects (%d lesions), %d validation subjects, %d iterations from %d",
                 settings.architecture, device, len(train), len(sampler.lesions), len(validation), settings.iterations, start)
        return lambda: batch_loss([sampler.sample() for _ in range(settings.batch_size)], False)

    @torch.no_grad()
    def validation_loss() -> float:
        if not fixed_validation:
            return float("nan")
        return float(np.mean([float(batch_loss(fixed_validation[start:start + settings.batch_size], True)["loss"])
                              for start in range(0, len(fixed_validation), settings.batch_size)]))

    schedule = engine.Schedule(settings.iterations, settings.learning_rate, settings.weight_decay, settings.validation_every,
                               settings.checkpoint_every)
    curves = engine.train(modules, make_step, validation_loss, schedule, device, amp, checkpoint,
                          run_fingerprint(settings, train, validation, tag), show_progress, "training")
    return {name: {n: t.detach().cpu() for n, t in module.state_dict().items()} for name, module in modules.items()}, curves


def _anchor_loss(modules: dict, settings: TrainSettings, example: SubjectVolumes, device: torch.device):
    """``loss(samples, validation)`` of our detector: the RPN's anchor losses (and HSPL's
    concentration loss) on a batch of patches (:func:`cmbflow.training.losses.detection_loss`).
    Validation batches draw their hard and background locations from a fixed seed."""
    extents = anchor_extents(settings.anchors_mm, example.spacing)
    modules["detector"] = modules["detector"].to(memory_format=torch.channels_last_3d)  # faster 3-D convolutions
    model, prototypes = modules["detector"], modules.get("prototypes")
    weight_con = settings.weight_con if settings.hspl else 0.0
    generator = torch.Generator().manual_seed(settings.seed)

    def loss(samples: list[dict], validation: bool) -> dict:
        images, targets = _batch(samples, extents, settings, device)
        with autocast(device, settings.cpu_bfloat16):
            out = model(images)
        parts = detection_loss(out.logits, out.deltas, out.features, targets, prototypes, weight_con, settings.n_hard,
                               settings.n_background, torch.Generator().manual_seed(0) if validation else generator)
        return {"loss": parts.total, "cls": parts.cls, "reg": parts.reg, "con": parts.con}
    return loss


def _retinanet_loss(modules: dict, settings: TrainSettings, example: SubjectVolumes, device: torch.device):
    """``loss(samples, validation)`` of the baseline: MONAI's RetinaNet losses (BCE
    on ATSS-matched, hard-negative-sampled anchors; smooth L1 box regression), as its detector
    computes them in training mode. For a validation batch the detector object alone is put in
    training mode (MONAI returns losses only then); its network stays in eval mode, so batch
    norms use their running statistics and are not updated."""
    detector = modules["detector"]

    def loss(samples: list[dict], validation: bool) -> dict:
        images = torch.stack([s["image"] for s in samples]).to(device)
        targets = [{"box": s["boxes"].to(device), "label": torch.zeros(len(s["boxes"]), dtype=torch.long, device=device)}
                   for s in samples]
        detector.training = True  # the object alone (nn.Module.train would recurse); engine.train sets the rest
        try:
            with autocast(device, settings.cpu_bfloat16):
                losses = detector(images, targets)
        finally:
            detector.training = not validation
        cls, reg = losses[detector.cls_key], losses[detector.box_reg_key]
        return {"loss": cls + reg, "cls": float(cls.detach()), "reg": float(reg.detach()), "con": 0.0}
    return loss


def run_fingerprint(settings: TrainSettings, train: list[SubjectVolumes], validation: list[SubjectVolumes],
                    tag: str = "") -> str:
    """The checkpoint fingerprint of a detector training (:func:`cmbflow.training.engine.fingerprint`)."""
    return engine.fingerprint(asdict(settings), [s.key for s in train], [s.key for s in validation], tag)


def settings_record(settings: TrainSettings) -> dict:
    """Settings as plain JSON-able values (for the model card)."""
    return asdict(settings)
