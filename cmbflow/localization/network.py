"""Training and whole-volume inference of the localization network.

Labels are the MARS atlas warped into each training subject by preprocessing (the
``regions`` file, on the model-ready grid). Patch centres are drawn class-balanced (a
quarter each from outside, lobar, deep, infratentorial voxels), so the small deep and
infratentorial regions are seen as often as the lobar one. Loss: MONAI ``DiceCELoss``.
No spatial augmentation: flipping or rotating the image would contradict its coordinate
channels. Instead, dark spots of 2-10 mm (CMB-like) are painted into the SWI channel of half
the patches with their labels unchanged: the network is asked the region *at candidates*,
which are dark spots, and must not read "dark" as "outside the brain" (without this it
labels most CMBs outside). Deterministic on CPU for a fixed seed; CUDA with mixed precision
when present.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import nibabel as nib
import numpy as np
import pandas as pd
import torch
from monai.losses import DiceCELoss

from cmbflow.atlas import REGION_NAMES
from cmbflow.device import default_device, prepare_training, settings_from_config
from cmbflow.inference.windows import sliding_window
from cmbflow.localization.coordinates import template_coordinates
from cmbflow.logs import progress
from cmbflow.models.localizer import build_localizer, divisor
from cmbflow.training.patches import crop_patch

log = logging.getLogger(__name__)
INDICES_PER_CLASS = 20_000  # voxels remembered per class and subject to draw patch centres from


@dataclass(frozen=True)
class LocalizerSettings:
    """Config ``localization.network`` (see config.yaml)."""

    channels: tuple[int, ...] = (8, 16, 32, 64)
    strides: tuple[int, ...] = (2, 2, 2)
    use_phase: bool = False
    patch_size: tuple[int, int, int] = (64, 64, 32)
    batch_size: int = 2
    iterations: int = 200
    learning_rate: float = 2e-3
    validation_every: int = 50
    roi_size: tuple[int, int, int] = (160, 160, -1)
    seed: int = 0

    @classmethod
    def from_config(cls, options: dict) -> "LocalizerSettings":
        return settings_from_config(cls, options)

    @property
    def in_channels(self) -> int:
        return (2 if self.use_phase else 1) + 3


@dataclass
class RegionVolumes:
    """One subject for the localizer, on its model-ready grid: ``image (C, D, H, W)`` (SWI
    [, phase], template x, y, z) and ``labels (D, H, W)`` (MARS codes; zeros when unknown)."""

    key: str
    image: np.ndarray
    labels: np.ndarray


def load_region_subject(key: str, files: dict[str, str], use_phase: bool) -> RegionVolumes:
    """Read ``swi`` [, ``phase``], ``regions`` and ``xfm_to_native`` of
    :func:`cmbflow.paths.preproc_subject_files`; the coordinates come from the transform."""
    swi = nib.load(files["swi"])
    channels = [np.asarray(swi.dataobj, np.float32)]
    if use_phase:
        channels.append(np.asarray(nib.load(files["phase"]).dataobj, np.float32))
    coordinates = template_coordinates(swi.affine, swi.shape[:3], files["xfm_to_native"])
    labels = np.asarray(nib.load(files["regions"]).dataobj).astype(np.int64) if files.get("regions") else np.zeros(swi.shape[:3], np.int64)
    return RegionVolumes(key, np.concatenate([np.stack(channels), coordinates]), labels)


class RegionPatchSampler:
    """Class-balanced patches ``(image (C, *size), labels (*size))`` from the subjects."""

    def __init__(self, subjects: list[RegionVolumes], patch_size, seed: int, spacing=(1.0, 1.0, 2.0), spots: bool = True):
        self.subjects = subjects
        self.spacing = spacing
        self.spots = spots
        self.size = np.asarray(patch_size, int)
        self.rng = np.random.default_rng(seed)
        self.indices = []  # per subject, per class: voxel indices (subsampled)
        for subject in subjects:
            per_class = {}
            for code in REGION_NAMES:
                voxels = np.argwhere(subject.labels == code)
                if len(voxels) > INDICES_PER_CLASS:
                    voxels = voxels[self.rng.choice(len(voxels), INDICES_PER_CLASS, replace=False)]
                if len(voxels):
                    per_class[code] = voxels
            self.indices.append(per_class)

    def sample(self) -> tuple[torch.Tensor, torch.Tensor]:
        n = int(self.rng.integers(len(self.subjects)))
        classes = sorted(self.indices[n])
        voxels = self.indices[n][classes[int(self.rng.integers(len(classes)))]]
        start = voxels[int(self.rng.integers(len(voxels)))] - self.size // 2
        subject = self.subjects[n]
        image = crop_patch(subject.image, start, self.size)
        labels = crop_patch(subject.labels[None], start, self.size)
        if self.spots and self.rng.random() < 0.5:
            self._paint_spots(image[0], labels[0])
        return torch.from_numpy(image), torch.from_numpy(labels)

    def _paint_spots(self, swi: np.ndarray, labels: np.ndarray) -> None:
        """Darken 1-3 Gaussian spots (CMB-like) centred on brain voxels of the patch, in place."""
        inside = np.argwhere(labels > 0)
        if not len(inside):
            return
        grid = np.indices(swi.shape, dtype=np.float32)
        for _ in range(int(self.rng.integers(1, 4))):
            centre = inside[int(self.rng.integers(len(inside)))]
            radius = self.rng.uniform(1.0, 5.0) / np.asarray(self.spacing)  # voxels per axis
            distance = sum(((grid[a] - centre[a]) / radius[a]) ** 2 for a in range(3))
            weight = np.exp(-distance).astype(np.float32)
            swi += weight * (self.rng.uniform(-0.6, 0.1) - swi)  # CMB centres reach -0.6 after SWI scaling


def _batch(sampler: RegionPatchSampler, batch_size: int, device: torch.device):
    pairs = [sampler.sample() for _ in range(batch_size)]
    return torch.stack([p[0] for p in pairs]).to(device), torch.stack([p[1] for p in pairs]).to(device)


def train_localizer(train: list[RegionVolumes], validation: list[RegionVolumes], settings: LocalizerSettings,
                    show_progress: bool = False, device: torch.device | None = None) -> tuple[dict, pd.DataFrame]:
    """Train the localizer; returns its ``state_dict`` (CPU tensors) and the loss curves."""
    device, amp = prepare_training(settings.seed, device)
    model = build_localizer(settings.in_channels, settings.channels, settings.strides).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    loss_function = DiceCELoss(to_onehot_y=True, softmax=True)
    sampler = RegionPatchSampler(train, settings.patch_size, settings.seed)
    fixed = ([_batch(RegionPatchSampler(validation, settings.patch_size, settings.seed + 1, spots=False), settings.batch_size, device)
              for _ in range(4)] if validation else [])
    rows, running = [], []
    log.info("training the localizer on %s: %d subjects, %d validation, %d iterations", device, len(train),
             len(validation), settings.iterations)
    for iteration in progress(range(settings.iterations), show_progress, "localizer"):
        model.train()
        images, labels = _batch(sampler, settings.batch_size, device)
        with torch.autocast(device_type=device.type, enabled=amp):
            loss = loss_function(model(images).float(), labels)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        running.append(float(loss.detach()))
        done = iteration + 1
        if done % settings.validation_every == 0 or done == settings.iterations:
            model.eval()
            with torch.no_grad(), torch.autocast(device_type=device.type, enabled=amp):
                val = [float(loss_function(model(x).float(), y)) for x, y in fixed]
            rows.append({"iteration": done, "train_loss": float(np.mean(running)),
                         "validation_loss": float(np.mean(val)) if val else float("nan")})
            running = []
            log.info("iteration %d: train %.4f, validation %.4f", done, rows[-1]["train_loss"], rows[-1]["validation_loss"])
    return {n: t.detach().cpu() for n, t in model.state_dict().items()}, pd.DataFrame(rows)


@torch.no_grad()
def segment_regions(model: torch.nn.Module, image: np.ndarray, settings: LocalizerSettings,
                    device: torch.device | None = None) -> np.ndarray:
    """MARS codes ``(D, H, W)`` uint8 of a whole volume ``image (C, D, H, W)`` (sliding window)."""
    device = device or default_device()
    model = model.to(device).eval()
    (logits,) = sliding_window(lambda window: (model(window),), image, settings.roi_size, 0.1, divisor(settings.strides), device)
    return logits.argmax(dim=0).numpy().astype(np.uint8)


def settings_record(settings: LocalizerSettings) -> dict:
    return asdict(settings)
