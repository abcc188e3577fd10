"""Training and whole-volume inference of the localization network.

Labels are the MARS atlas warped into each training subject by preprocessing (the
``regions`` file, on the model-ready grid). The network is asked the region *at candidates*,
which are dark spots; after skull stripping a CMB is as dark as the background outside the
head, and a network reading the raw SWI calls most CMBs "outside" (measured: 29 % of the
internal CMBs right). So the SWI channel is grey-closed first (:func:`close_dark_spots`):
spots narrower than ``closing_mm`` take the intensity of the tissue around them, and the
region of a location no longer depends on the lesion there. Loss: soft Dice + cross-entropy
weighted up on CMB voxels. No spatial augmentation: flipping or rotating the image would
contradict its coordinate channels. Deterministic on CPU for a fixed seed; CUDA with mixed
precision when present.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import nibabel as nib
import numpy as np
import pandas as pd
import torch
from monai.losses import DiceLoss

from cmbflow.atlas import REGION_NAMES
from cmbflow.dark_spots import close_dark_spots
from cmbflow.device import autocast, default_device, prepare_training
from cmbflow.inference.windows import sliding_window
from cmbflow.localization.coordinates import template_coordinates
from cmbflow.models.localizer import build_localizer, divisor
from cmbflow.settings import FromConfig
from cmbflow.training.engine import Schedule, fingerprint
from cmbflow.training.engine import train as engine_train
from cmbflow.training.patches import crop_patch

# Channels-last 3-D tensors: the same arithmetic, ~17 % faster training on CPU (oneDNN convolutions).
CHANNELS_LAST = torch.channels_last_3d

log = logging.getLogger(__name__)
INDICES_PER_CLASS = 20_000  # voxels remembered per class and subject to draw patch centres from
VALIDATION_BATCHES = 4  # fixed batches of the validation subjects the curve is measured on


@dataclass(frozen=True)
class LocalizerSettings(FromConfig):
    """Config ``localizer`` (see config.yaml)."""

    section: ClassVar[str] = "localizer"
    ignored: ClassVar[tuple[str, ...]] = ("threads",)

    channels: tuple[int, ...]
    strides: tuple[int, ...]
    pool: tuple[int, int, int]
    use_phase: bool
    closing_mm: float
    patch_size: tuple[int, int, int]
    batch_size: int
    iterations: int
    learning_rate: float
    weight_decay: float
    lesion_fraction: float
    lesion_weight: float
    validation_fraction: float
    validation_every: int
    checkpoint_every: int
    roi_size: tuple[int, int, int]
    seed: int

    @property
    def in_channels(self) -> int:
        return (2 if self.use_phase else 1) + 3


@dataclass
class RegionVolumes:
    """One subject for the localizer, on its model-ready grid: ``image (C, D, H, W)`` (SWI
    [, phase], template x, y, z), ``labels (D, H, W)`` (MARS codes; zeros when unknown) and,
    for training, ``lesions (D, H, W)`` (CMB voxels; ``None`` when unknown)."""

    key: str
    image: np.ndarray
    labels: np.ndarray
    lesions: np.ndarray | None = None


def load_region_subject(key: str, files: dict[str, str], use_phase: bool, closing_mm: float = 0.0) -> RegionVolumes:
    """Read ``swi`` [, ``phase``], ``regions`` and ``xfm_to_native`` of
    :func:`cmbflow.paths.preproc_subject_files`; the coordinates come from the transform; the
    SWI channel is closed with :func:`close_dark_spots` (``closing_mm``)."""
    swi = nib.load(files["swi"])
    channels = [close_dark_spots(np.asarray(swi.dataobj, np.float32), swi.header.get_zooms()[:3], closing_mm)]
    if use_phase:
        channels.append(np.asarray(nib.load(files["phase"]).dataobj, np.float32))
    coordinates = template_coordinates(swi.affine, swi.shape[:3], files["xfm_to_native"])
    labels = np.asarray(nib.load(files["regions"]).dataobj).astype(np.int64) if files.get("regions") else np.zeros(swi.shape[:3], np.int64)
    lesions = np.asarray(nib.load(files["cmb_mask"]).dataobj) > 0 if files.get("cmb_mask") else None
    return RegionVolumes(key, np.concatenate([np.stack(channels), coordinates]), labels, lesions)


class RegionPatchSampler:
    """Training patches ``(image (C, *size), labels (1, *size), weights (1, *size))``.

    Centres are drawn from CMB voxels (a share ``lesion_fraction``, subjects with CMBs) or
    else class-balanced from the four regions (so the small deep and infratentorial regions
    are seen as often as the lobar one). ``weights`` is ``lesion_weight`` on CMB voxels, 1
    elsewhere: the network is asked the region at candidates, a few dozen of the 10^5 voxels of
    a patch."""

    def __init__(self, subjects: list[RegionVolumes], settings: LocalizerSettings, seed: int, on_lesions: bool = True):
        self.subjects = subjects
        self.settings = settings
        self.on_lesions = on_lesions  # False: class-balanced centres only (validation)
        self.size = np.asarray(settings.patch_size, int)
        self.rng = np.random.default_rng(seed)
        self.indices = []  # per subject, per class: voxel indices (subsampled)
        self.lesion_voxels = []
        for subject in subjects:
            per_class = {}
            for code in REGION_NAMES:
                voxels = np.argwhere(subject.labels == code)
                if len(voxels) > INDICES_PER_CLASS:
                    voxels = voxels[self.rng.choice(len(voxels), INDICES_PER_CLASS, replace=False)]
                if len(voxels):
                    per_class[code] = voxels
            self.indices.append(per_class)
            lesions = subject.lesions if subject.lesions is not None else np.zeros(subject.labels.shape, bool)
            self.lesion_voxels.append(np.argwhere(lesions))

    def _centre(self, n: int) -> np.ndarray:
        lesions = self.lesion_voxels[n]
        if self.on_lesions and len(lesions) and self.rng.random() < self.settings.lesion_fraction:
            return lesions[int(self.rng.integers(len(lesions)))]
        classes = sorted(self.indices[n])
        voxels = self.indices[n][classes[int(self.rng.integers(len(classes)))]]
        return voxels[int(self.rng.integers(len(voxels)))]

    def sample(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n = int(self.rng.integers(len(self.subjects)))
        subject = self.subjects[n]
        start = self._centre(n) - self.size // 2
        image = crop_patch(subject.image, start, self.size)
        labels = crop_patch(subject.labels[None], start, self.size)
        weights = np.ones(labels.shape, np.float32)
        if subject.lesions is not None:
            weights[crop_patch(subject.lesions[None], start, self.size)] = self.settings.lesion_weight
        return torch.from_numpy(image), torch.from_numpy(labels), torch.from_numpy(weights)


def _batch(sampler: RegionPatchSampler, batch_size: int, device: torch.device):
    triples = [sampler.sample() for _ in range(batch_size)]
    images, labels, weights = (torch.stack([t[i] for t in triples]).to(device) for i in range(3))
    return images.contiguous(memory_format=CHANNELS_LAST), labels, weights


class WeightedDiceCELoss(torch.nn.Module):
    """Soft Dice (MONAI) + voxel-weighted cross-entropy, on logits ``(B, 4, ...)`` and labels /
    weights ``(B, 1, ...)``."""

    def __init__(self):
        super().__init__()
        self.dice = DiceLoss(to_onehot_y=True, softmax=True)

    def forward(self, logits, labels, weights):
        cross_entropy = torch.nn.functional.cross_entropy(logits, labels[:, 0].long(), reduction="none")
        return self.dice(logits, labels) + (cross_entropy * weights[:, 0]).sum() / weights.sum()


def train_localizer(train: list[RegionVolumes], validation: list[RegionVolumes], settings: LocalizerSettings,
                    checkpoint: str | Path | None = None, show_progress: bool = False,
                    device: torch.device | None = None) -> tuple[dict, pd.DataFrame]:
    """Train the localizer (:func:`cmbflow.training.engine.train`); returns its ``state_dict``
    (CPU tensors) and the loss curves. ``checkpoint``: a resume point outside the job's outputs."""
    device, amp = prepare_training(settings.seed, device)
    model = build_localizer(settings.in_channels, settings.channels, settings.strides, settings.pool)
    model = model.to(device, memory_format=CHANNELS_LAST)
    loss_function = WeightedDiceCELoss()
    held_out = RegionPatchSampler(validation, settings, settings.seed + 1, on_lesions=False) if validation else None
    fixed = [_batch(held_out, settings.batch_size, device) for _ in range(VALIDATION_BATCHES)] if held_out else []
    log.info("training the localizer on %s: %d subjects, %d validation, %d iterations", device, len(train),
             len(validation), settings.iterations)

    def make_step(start: int):
        sampler = RegionPatchSampler(train, settings, settings.seed + 100_003 * start)

        def step() -> dict:
            images, labels, weights = _batch(sampler, settings.batch_size, device)
            with autocast(device):
                return {"loss": loss_function(model(images).float(), labels, weights)}
        return step

    def validation_loss() -> float:
        with autocast(device):
            losses = [float(loss_function(model(x).float(), y, w)) for x, y, w in fixed]
        return float(np.mean(losses)) if losses else float("nan")

    schedule = Schedule(settings.iterations, settings.learning_rate, settings.weight_decay, settings.validation_every,
                        settings.checkpoint_every)
    key = fingerprint(asdict(settings), [s.key for s in train], [s.key for s in validation])
    curves = engine_train({"localizer": model}, make_step, validation_loss, schedule, device, amp, checkpoint, key,
                          show_progress, "localizer")
    return {n: t.detach().cpu() for n, t in model.state_dict().items()}, curves


@torch.no_grad()
def segment_regions(model: torch.nn.Module, image: np.ndarray, settings: LocalizerSettings,
                    device: torch.device | None = None) -> np.ndarray:
    """MARS codes ``(D, H, W)`` uint8 of a whole volume ``image (C, D, H, W)`` (sliding window)."""
    device = device or default_device()
    model = model.to(device, memory_format=CHANNELS_LAST).eval()
    (logits,) = sliding_window(lambda window: (model(window.contiguous(memory_format=CHANNELS_LAST)),), image,
                               settings.roi_size, 0.1, divisor(settings.strides, settings.pool), device)
    return logits.argmax(dim=0).numpy().astype(np.uint8)


def settings_record(settings: LocalizerSettings) -> dict:
    return asdict(settings)
