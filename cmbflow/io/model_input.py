"""The detector's input as preprocessing wrote it: the two-channel model-ready volume and its brain mask.

Read in one place for training (:mod:`cmbflow.training.patches`) and inference
(:mod:`cmbflow.inference.detect`), so both see the same channels in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass

import nibabel as nib
import numpy as np


@dataclass
class ModelInput:
    """One preprocessed subject as the detector reads it (model-ready grid)."""

    image: np.ndarray  # (2, D, H, W): SWI, phase
    brain: np.ndarray  # (D, H, W) bool
    affine: np.ndarray  # voxel of the model-ready grid -> world mm RAS+
    spacing: tuple[float, float, float]


def load_model_input(files: dict[str, str]) -> ModelInput:
    """Read the ``swi``, ``phase`` and ``brainmask`` files of :func:`cmbflow.paths.preproc_subject_files`."""
    swi = nib.load(files["swi"])
    image = np.stack([np.asarray(swi.dataobj, np.float32), np.asarray(nib.load(files["phase"]).dataobj, np.float32)])
    brain = np.asarray(nib.load(files["brainmask"]).dataobj) > 0
    return ModelInput(image, brain, swi.affine, tuple(float(v) for v in swi.header.get_zooms()[:3]))
