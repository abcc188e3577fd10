"""Template -> subject registration with ANTs (affine -> SyN by default; rigid, affine, SyN configurable).

The template (an SWI-like image, or a T1w with Mattes mutual information, which does not
assume the two modalities share intensities) is the moving image and the subject's
bias-corrected SWI magnitude the fixed one. Both are first resampled to
``spacing_mm`` (default 2.5 mm): the deformation fields a head needs are smooth on that
scale, while the atlas is later resampled through the transform at full resolution.

Stages run one after another, each starting from the previous result; the last writes
ANTs composite transforms (``.h5``):

* ``forward`` (``from-template_to-native``): resamples template images onto the subject
  (``ants.apply_transforms``) and maps subject points to the template
  (``ants.apply_transforms_to_points``: points travel opposite to images);
* ``inverse`` (``from-native_to-template``): the reverse of both.

Points cross here only as world mm RAS+; :func:`map_points` converts to ITK's LPS.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import ants
import numpy as np
import pandas as pd

from cmbflow.atlas import REGION_NAMES
from cmbflow.io.coords import lps_to_ras, ras_to_lps
from cmbflow.settings import FromConfig

log = logging.getLogger(__name__)

STAGES = ("rigid", "affine", "syn")
_ANTS_TYPES = {"rigid": "Rigid", "affine": "Affine", "syn": "SyNOnly"}
METRICS = ("mattes", "meansquares", "CC")  # names ANTs understands for every stage
BRAIN_CODE = len(REGION_NAMES)  # the atlas label image codes region + BRAIN_CODE x brain (one warp for both)


@dataclass(frozen=True)
class RegistrationSettings(FromConfig):
    """Registration parameters (config ``preprocessing.registration``); see config.yaml."""

    section: ClassVar[str] = "preprocessing.registration"

    stages: tuple[str, ...]
    metric: str
    spacing_mm: float
    linear_iterations: tuple[int, ...]
    linear_shrink_factors: tuple[int, ...]
    linear_smoothing_vox: tuple[float, ...]
    syn_iterations: tuple[int, ...]
    sampling_rate: float
    seed: int

    def __post_init__(self):
        if not self.stages or list(self.stages) != [s for s in STAGES if s in self.stages]:
            raise ValueError(f"registration stages must be a non-empty, ordered subset of {STAGES}, not {list(self.stages)}")
        if self.metric not in METRICS:
            raise ValueError(f"registration metric must be one of {METRICS}, not {self.metric!r}")
        if not len(self.linear_iterations) == len(self.linear_shrink_factors) == len(self.linear_smoothing_vox):
            raise ValueError("linear_iterations, linear_shrink_factors and linear_smoothing_vox need one entry per level")


@dataclass
class Registration:
    """Result of :func:`register_template`: the two composite transform files."""

    forward: str
    inverse: str
    stages: tuple[str, ...] = field(default_factory=tuple)


def _stage_arguments(stage: str, settings: RegistrationSettings) -> dict:
    if stage == "syn":
        return {"syn_metric": settings.metric, "syn_sampling": 32, "reg_iterations": settings.syn_iterations}
    return {"aff_metric": settings.metric, "aff_sampling": 32, "aff_random_sampling_rate": settings.sampling_rate,
            "aff_iterations": settings.linear_iterations, "aff_shrink_factors": settings.linear_shrink_factors,
            "aff_smoothing_sigmas": settings.linear_smoothing_vox}


def _seed_ants(seed: int) -> None:
    """Pass ``--random-seed`` to every ANTs registration (the public switch also forces one
    thread through the environment; keep the job's own thread count)."""
    threads = os.environ.get("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS")
    ants.config.set_ants_deterministic(True, seed)
    if threads is not None:
        os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = threads


def register_template(subject: ants.ANTsImage, template: ants.ANTsImage, settings: RegistrationSettings,
                      forward_path: str | Path, inverse_path: str | Path) -> Registration:
    """Register ``template`` (moving) to ``subject`` (fixed); write the forward and inverse
    composite transforms to the given paths (see module docstring for their directions)."""
    _seed_ants(settings.seed)
    spacing = (settings.spacing_mm,) * 3
    fixed = ants.resample_image(subject, spacing, use_voxels=False, interp_type=0)
    moving = ants.resample_image(template, spacing, use_voxels=False, interp_type=0)
    with tempfile.TemporaryDirectory(prefix="cmbflow_reg_") as workdir:
        initial = None
        for number, stage in enumerate(settings.stages):
            result = ants.registration(fixed, moving, type_of_transform=_ANTS_TYPES[stage], initial_transform=initial,
                                       outprefix=f"{workdir}/{stage}_", write_composite_transform=number == len(settings.stages) - 1,
                                       **_stage_arguments(stage, settings))
            initial = result["fwdtransforms"]
            log.info("registration stage %s done", stage)
        forward, inverse = result["fwdtransforms"], result["invtransforms"]
        for source, target in ((forward, forward_path), (inverse, inverse_path)):
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
    return Registration(str(forward_path), str(inverse_path), tuple(settings.stages))


def warp_to_grid(template_image: ants.ANTsImage, reference: ants.ANTsImage, transform: str | Path,
                 interpolator: str) -> np.ndarray:
    """Resample a template image through ``transform`` (the forward composite) onto the grid
    of ``reference``. ``interpolator``: ``genericLabel`` for labels, ``linear`` otherwise."""
    return ants.apply_transforms(reference, template_image, [str(transform)], interpolator=interpolator).numpy()


def atlas_label_image(regions: ants.ANTsImage, brain: ants.ANTsImage) -> ants.ANTsImage:
    """The template's MARS region codes and brain mask as one label image on the regions' grid:
    ``region + BRAIN_CODE x brain`` (the mask brought onto that grid first where it lies on
    another). :func:`warp_atlas` resamples both at the cost of one."""
    if not ants.image_physical_space_consistency(regions, brain):
        brain = ants.resample_image_to_target(brain, regions, interp_type="nearestNeighbor")
    return regions.new_image_like(np.rint(regions.numpy()) + BRAIN_CODE * (brain.numpy() > 0))


def warp_atlas(labels: ants.ANTsImage, reference: ants.ANTsImage, transform: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``(regions, brain mask)`` (uint8, on the grid of ``reference``) from an
    :func:`atlas_label_image` resampled through ``transform`` (the forward composite) with
    ``genericLabel``. Resampling reads the displacement field at every voxel, the cost of a warp
    whatever the interpolator: one warp for both takes half the time of one each. Both maps come
    from one label vote per voxel (warped apart, each had its own vote; the maps differ from those
    at about 0.04 % of the voxels)."""
    codes = np.rint(warp_to_grid(labels, reference, transform, "genericLabel")).astype(np.uint8)
    return codes % BRAIN_CODE, (codes >= BRAIN_CODE).astype(np.uint8)


def map_points(xyz_ras: np.ndarray, transform: str | Path) -> np.ndarray:
    """Map points ``(N, 3)`` world mm RAS+ through a composite transform file.

    With the ``from-template_to-native`` file a subject point goes to the template, with
    ``from-native_to-template`` a template point goes to the subject (ITK moves points
    opposite to images). Returns world mm RAS+ ``(N, 3)``.
    """
    xyz_ras = np.atleast_2d(np.asarray(xyz_ras, float))
    if len(xyz_ras) == 0:
        return xyz_ras.reshape(0, 3)
    points = pd.DataFrame(ras_to_lps(xyz_ras), columns=["x", "y", "z"])
    moved = ants.apply_transforms_to_points(3, points, [str(transform)])
    return lps_to_ras(moved[["x", "y", "z"]].to_numpy(float))
