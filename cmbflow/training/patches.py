"""Training patches from preprocessed subjects, with MONAI augmentation.

A subject is its model-ready images (``image (C, D, H, W)``: SWI[, phase], as the model reads them), the CMB instance
labels ``(D, H, W)`` and one lesion table (instance label -> diameter in mm). A patch centre
is, with probability ``cmb_fraction``, a random CMB (shifted by up to a quarter patch, so
lesions are not always central); with probability ``mimic_fraction``, one of the darkest
non-CMB spots of a subject's SWI (:func:`cmbflow.dark_spots.dark_spot_voxels`: veins,
calcifications, air-tissue artefacts, the brain's dark edge: the mimics the detector must
reject, which uniform patches rarely show), each connected structure as likely as another
(a large artefact must not take the share of many small veins), shifted likewise; else a uniform voxel of the brain.
With probability ``masked_background`` a patch's background is blanked as a skull-stripped or
SPM-masked input's is (:meth:`PatchSampler._mask_background`). CMB-free
subjects and patches are used as they come, never dropped. Lesion boxes are taken **after** augmentation
from the transformed instance labels (their centres of mass), so flips and rotations move
boxes and images together.
"""

from __future__ import annotations

from dataclasses import dataclass

import nibabel as nib
import numpy as np
import pandas as pd
import torch
from monai import transforms as mt
from monai.data import get_track_meta, set_track_meta
from monai.utils import convert_to_tensor
from scipy import ndimage

from cmbflow.dark_spots import dark_spot_structures, dark_spot_voxels
from cmbflow.io.model_input import INPUTS, PhaseScaling, load_model_input
from cmbflow.models.anchors import boxes_from_centres

DEFAULT_DIAMETER_MM = 4.0  # a lesion annotated without a size


@dataclass
class SubjectVolumes:
    """One preprocessed subject on its model-ready grid (voxel index space)."""

    key: str
    image: np.ndarray  # (C, D, H, W) float32: SWI[, phase]
    labels: np.ndarray  # (D, H, W) int32 CMB instances
    brain: np.ndarray  # (D, H, W) bool
    diameters: dict[int, float]  # instance label -> diameter mm
    spacing: tuple[float, float, float]


def load_subject(key: str, files: dict[str, str], phase_scaling: PhaseScaling, inputs=INPUTS) -> SubjectVolumes:
    """Read the ``inputs`` (``swi``[, ``phase``]), ``brainmask``, ``cmb_mask`` and ``markers``
    files of :func:`cmbflow.paths.preproc_subject_files`, the phase scaled as the model reads it."""
    data = load_model_input(files, phase_scaling, inputs)
    labels = np.asarray(nib.load(files["cmb_mask"]).dataobj).astype(np.int32)
    markers = pd.read_csv(files["markers"], sep="\t")
    diameters = {int(row.label): (2 * float(row.radius_mm) if np.isfinite(row.radius_mm) else DEFAULT_DIAMETER_MM)
                 for row in markers.itertuples() if row.label > 0}
    for label in np.unique(labels):
        if label > 0 and int(label) not in diameters:
            diameters[int(label)] = DEFAULT_DIAMETER_MM
    return SubjectVolumes(key, data.image, labels, data.brain, diameters, data.spacing)


def augmentation(seed: int, inputs=INPUTS) -> mt.Compose:
    """Flips on every axis, small rotations (about the slice axis +-15 deg, others +-5 deg) and
    scaling (+-10 %); then, where cheaper than simulating, appearance: on the SWI channel a
    gamma curve, a random histogram remapping, a smooth multiplicative bias and a resolution
    blur (thicker or smoother acquisitions), on both channels intensity scaling and noise.
    The physics (field, TE, voxel size, tissue contrast) is randomized by the generator
    (:mod:`cmbflow.synth.randomize`); these cover the scanner-side remapping of grey levels
    that a simulation draw per subject would only reach slowly. Nearest-neighbour for labels.
    ``inputs``: the image channels (``swi``[, ``phase``]), in order."""
    keys = [*inputs, "label"]  # channels as separate keys: intensity transforms touch the SWI alone
    compose = mt.Compose([
        mt.RandFlipd(keys, prob=0.5, spatial_axis=0),
        mt.RandFlipd(keys, prob=0.5, spatial_axis=1),
        mt.RandFlipd(keys, prob=0.5, spatial_axis=2),
        mt.RandAffined(keys, prob=0.5, rotate_range=(0.09, 0.09, 0.26), scale_range=0.1,
                       mode=("bilinear",) * len(inputs) + ("nearest",), padding_mode="zeros"),
        mt.RandAdjustContrastd("swi", prob=0.3, gamma=(0.6, 1.6)),
        mt.RandHistogramShiftd("swi", num_control_points=(4, 8), prob=0.2),
        mt.RandBiasFieldd("swi", degree=3, coeff_range=(0.0, 0.2), prob=0.3),
        mt.RandGaussianSmoothd("swi", sigma_x=(0.25, 1.0), sigma_y=(0.25, 1.0), sigma_z=(0.25, 0.75), prob=0.2),
        mt.ConcatItemsd(list(inputs), "image", dim=0),
        mt.RandScaleIntensityd("image", factors=0.1, prob=0.5),
        mt.RandGaussianNoised("image", std=0.02, prob=0.3),
    ])
    compose.set_random_state(seed=seed)
    return compose


class PatchSampler:
    """Draws augmented patches ``(image (C, *size), label (*size))`` and their lesion boxes."""

    def __init__(self, subjects: list[SubjectVolumes], patch_size, cmb_fraction: float, seed: int, augment: bool = True,
                 mimic_fraction: float = 0.0, mimic_closing_mm: float = 7.0, mimic_share: float = 0.005,
                 masked_background: float = 0.0, masked_margin_mm: tuple[float, float] = (-2.0, 8.0)):
        if not subjects:
            raise ValueError("no training subjects")
        if cmb_fraction + mimic_fraction > 1:
            raise ValueError(f"cmb_fraction + mimic_fraction is {cmb_fraction + mimic_fraction:g}; at most 1")
        self.subjects = subjects
        self.size = np.asarray(patch_size, int)
        self.cmb_fraction = cmb_fraction
        self.mimic_fraction = mimic_fraction
        self.masked_background = masked_background
        self.masked_margin_mm = tuple(float(v) for v in masked_margin_mm)
        if self.masked_margin_mm[0] > self.masked_margin_mm[1]:
            raise ValueError(f"masked_margin_mm {list(masked_margin_mm)}: the first (smallest margin) must not exceed the second")
        self.rng = np.random.default_rng(seed)
        channels = {s.image.shape[0] for s in subjects}
        if len(channels) != 1 or channels.pop() not in (1, len(INPUTS)):
            raise ValueError(f"training subjects have {sorted(s.image.shape[0] for s in subjects)} channels; all need the same inputs")
        self.inputs = INPUTS[:subjects[0].image.shape[0]]
        self.transform = augmentation(seed, self.inputs) if augment else None
        self.lesions = [(n, label) for n, s in enumerate(subjects) for label in s.diameters]
        # Voxel lists found once (a whole-volume search per patch was ~10 % of an iteration).
        self._lesion_voxels = {(n, label): np.argwhere(subjects[n].labels == label) for n, label in self.lesions}
        self._brain_voxels = [np.flatnonzero(s.brain) for s in subjects]
        self._mimic_voxels = [self._mimics(s, mimic_closing_mm, mimic_share) for s in subjects] if mimic_fraction > 0 else []
        self._mimic_subjects = [n for n, structures in enumerate(self._mimic_voxels) if structures]
        self._air = {s.key: float(s.image[0].min()) for s in subjects}  # where a raw 0 lands: _mask_background

    @staticmethod
    def _mimics(subject: SubjectVolumes, closing_mm: float, share: float) -> list[np.ndarray]:
        """Darkest spots of the brain away from the subject's CMBs (two voxels' clearance),
        as connected structures."""
        clear = subject.brain & ~ndimage.binary_dilation(subject.labels > 0, iterations=2)
        return dark_spot_structures(dark_spot_voxels(subject.image[0], clear, subject.spacing, closing_mm, share), clear.shape)

    def _jitter(self) -> np.ndarray:
        return self.rng.integers(-self.size // 4, self.size // 4 + 1)

    def _centre(self) -> tuple[SubjectVolumes, np.ndarray]:
        draw = self.rng.random()
        if self.lesions and draw < self.cmb_fraction:
            n, label = self.lesions[self.rng.integers(len(self.lesions))]
            voxels = self._lesion_voxels[n, label]
            return self.subjects[n], voxels[self.rng.integers(len(voxels))] + self._jitter()
        if self._mimic_subjects and draw < self.cmb_fraction + self.mimic_fraction:
            n = self._mimic_subjects[self.rng.integers(len(self._mimic_subjects))]
            structures = self._mimic_voxels[n]
            voxels = structures[self.rng.integers(len(structures))]
            return self.subjects[n], voxels[self.rng.integers(len(voxels))] + self._jitter()
        n = self.rng.integers(len(self.subjects))
        brain = self._brain_voxels[n]
        return self.subjects[n], np.array(np.unravel_index(brain[self.rng.integers(len(brain))], self.subjects[n].brain.shape))

    def _mask_background(self, image: np.ndarray, subject: SubjectVolumes, start: np.ndarray) -> None:
        """Blank ``image`` (a patch at voxel ``start``, in place) beyond the brain mask grown by a
        margin drawn from ``masked_margin_mm`` (negative: shrunk), as in a skull-stripped (BET,
        SynthStrip: the brain's edge, some cortex lost) or SPM-masked (brain and a rim) input.

        Such an input's background is 0 and reaches the model as preprocessing scales a 0: the
        SWI at the subject's darkest value (air: the magnitude is never below 0, so its minimum
        is where raw 0 lands) and the phase at 0. Training sees heads only otherwise, and a
        masked unseen site lost up to 0.09 CPM to new false positives at the brain's edge
        (``benchmarks/coverage_benchmark.py``; docs/results.md, "Masked backgrounds")."""
        margin_mm = self.rng.uniform(*self.masked_margin_mm)
        reach = np.ceil(max(abs(margin_mm), 1.0) / np.asarray(subject.spacing)).astype(int) + 1
        brain = crop_patch(subject.brain[None], start - reach, self.size + 2 * reach)[0]
        if margin_mm >= 0:
            kept = ndimage.distance_transform_edt(~brain, sampling=subject.spacing) <= margin_mm
        else:
            kept = ndimage.distance_transform_edt(brain, sampling=subject.spacing) > -margin_mm
        kept = kept[tuple(slice(r, r + n) for r, n in zip(reach, self.size))]
        air = (self._air[subject.key], *[0.0] * (image.shape[0] - 1))
        for channel, level in enumerate(air):
            image[channel][~kept] = level

    def sample(self) -> dict:
        """One patch: ``image`` (C, *size) float tensor, ``label`` (*size) int tensor,
        ``boxes`` (G, 6) voxel boxes of the patch, ``key`` of its subject."""
        subject, centre = self._centre()
        start = centre - self.size // 2
        image = crop_patch(subject.image, start, self.size)
        if self.masked_background > 0 and self.rng.random() < self.masked_background:
            self._mask_background(image, subject, start)
        label = crop_patch(subject.labels[None], start, self.size)
        item = {"image": torch.from_numpy(image), "label": torch.from_numpy(label.astype(np.float32))}
        if self.transform is not None:
            # Plain tensors through the transforms (MONAI's set_track_meta): no metadata nor
            # inverse records to keep, the same values, a fifth less time a patch
            tracking = get_track_meta()
            set_track_meta(False)
            try:
                item = self.transform({**{name: item["image"][n:n + 1] for n, name in enumerate(self.inputs)}, "label": item["label"]})
            finally:
                set_track_meta(tracking)
        # Plain tensors for the network whatever the transforms returned: MONAI's MetaTensor routes
        # every network operation through its metadata handling, 0.13 s of a 1 s training step here.
        image = convert_to_tensor(item["image"], track_meta=False).float()
        label = convert_to_tensor(item["label"], track_meta=False)[0].round().long()
        return {"image": image, "label": label, "boxes": lesion_boxes(label, subject.diameters, subject.spacing),
                "key": subject.key}


def crop_patch(volume: np.ndarray, start: np.ndarray, size: np.ndarray) -> np.ndarray:
    """``volume (C, D, H, W)`` cropped at ``start`` to ``size``, zero outside the volume."""
    out = np.zeros((volume.shape[0], *size), volume.dtype)
    lo = np.maximum(start, 0)
    hi = np.minimum(start + size, volume.shape[1:])
    if np.any(hi <= lo):
        return out
    src = tuple(slice(a, b) for a, b in zip(lo, hi))
    dst = tuple(slice(a - s, b - s) for a, b, s in zip(lo, hi, start))
    out[(slice(None), *dst)] = volume[(slice(None), *src)]
    return out


def lesion_boxes(label: torch.Tensor, diameters: dict[int, float], spacing) -> torch.Tensor:
    """Voxel boxes ``(G, 6)`` of the lesions present in a label patch: centre of mass of each
    instance, diameter from ``diameters`` (mm)."""
    array = label.numpy()
    ids = [int(v) for v in np.unique(array) if v > 0]
    if not ids:
        return torch.zeros(0, 6)
    centres = torch.tensor(np.array(ndimage.center_of_mass(array > 0, array, ids)), dtype=torch.float32).reshape(-1, 3)
    sizes = torch.tensor([diameters.get(i, DEFAULT_DIAMETER_MM) for i in ids], dtype=torch.float32)
    return boxes_from_centres(centres, sizes, spacing)
