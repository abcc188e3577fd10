"""The detector's input as preprocessing wrote it: the model-ready volume (SWI and, for
two-channel models, phase) and its brain mask.

Read in one place for training (:mod:`cmbflow.training.patches`) and inference
(:mod:`cmbflow.inference.detect`), so both see the same channels in the same order and the
same phase scaling (:class:`PhaseScaling`, recorded in the model card).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import nibabel as nib
import numpy as np

from cmbflow.io.nifti import read_nifti_array

PHASE_METHODS = ("pi", "brain_mad")


@dataclass(frozen=True)
class PhaseScaling:
    """How the phase channel reaches the network.

    * ``pi``: as preprocessing wrote it, ``phase_sign * radians / pi``.
    * ``brain_mad``: divided by ``mads`` times the robust spread of the phase inside the brain
      mask (1.4826 x median absolute deviation) and clipped to [-1, 1]. Phase contrast scales
      with B0 x TE (7.5 to 100 ms T across scanners, so 13x) and its noise with 1/SNR; the
      brain's own spread carries both, so tissue lands in about the same range at every site
      while CMBs and veins, many spreads away, saturate towards +-1.
    """

    method: str  # config detector.input.phase_scaling (the schema holds the default)
    mads: float  # config detector.input.phase_mads

    def __post_init__(self):
        if self.method not in PHASE_METHODS:
            raise ValueError(f"phase scaling {self.method!r}: use one of {', '.join(PHASE_METHODS)}")
        if not self.mads > 0:
            raise ValueError(f"phase scaling: mads must be positive, not {self.mads!r}")

    @classmethod
    def from_record(cls, record: dict | None, source: str = "model card") -> "PhaseScaling":
        """From a model card's ``normalization`` entry (or the config section
        ``detector.input``, whose keys are the same). ``source`` names it in errors."""
        missing = [key for key in ("phase_scaling", "phase_mads") if key not in (record or {})]
        if missing:
            raise ValueError(f"{source}: normalization has no {' or '.join(missing)}, so how the model reads the phase "
                             "is unknown. Models written by cmbflow record it; retrain the model, or add "
                             '"phase_scaling": "pi", "phase_mads": 6.0 to its card if it was trained on radians / pi.')
        return cls(record["phase_scaling"], float(record["phase_mads"]))

    def record(self) -> dict:
        """The card's ``normalization`` entries of this scaling."""
        return {"phase_scaling": self.method, "phase_mads": self.mads}

    def apply(self, phase: np.ndarray, brain: np.ndarray) -> np.ndarray:
        """``phase (D, H, W)`` (preprocessed, radians / pi) scaled for the network (float32)."""
        if self.method == "pi":
            return phase.astype(np.float32, copy=False)
        inside = phase[brain]
        if inside.size == 0:
            raise ValueError("brain mask is empty; cannot scale the phase")
        spread = 1.4826 * float(np.median(np.abs(inside - np.median(inside))))
        if spread <= 0:
            raise ValueError("phase is constant inside the brain; cannot scale it (is the phase image empty?)")
        return np.clip(phase / (self.mads * spread), -1.0, 1.0).astype(np.float32)


@dataclass
class ModelInput:
    """One preprocessed subject as the detector reads it (model-ready grid)."""

    image: np.ndarray  # (C, D, H, W): the model's inputs in order (SWI[, phase])
    brain: np.ndarray  # (D, H, W) bool
    affine: np.ndarray  # voxel of the model-ready grid -> world mm RAS+
    spacing: tuple[float, float, float]


INPUTS = ("swi", "phase")  # every input a detector can read, in channel order


def model_inputs(card: dict) -> list[str]:
    """The inputs a detector reads, in channel order (``swi``[, ``phase``]), from its model card.
    Cards written before one-channel models existed hold two channels: SWI and phase."""
    if "inputs" in card:
        return list(card["inputs"])
    return list(INPUTS)[:int(card.get("network", {}).get("in_channels", len(INPUTS)))]


def load_model_input(files: dict[str, str], phase_scaling: PhaseScaling, inputs=INPUTS, threads: int = 1) -> ModelInput:
    """Read ``brainmask`` and the ``inputs`` (``swi``[, ``phase``]) of the files of
    :func:`cmbflow.paths.preproc_subject_files`, the phase scaled by ``phase_scaling`` and
    ``inputs`` as the model's card says (:func:`cmbflow.models.card.model_inputs`). With
    ``threads`` > 1 the files are read side by side (:func:`cmbflow.io.nifti.read_nifti_array`:
    a full-size subject's two 66 MB channels take ~0.9 s of gzip on one core)."""
    if list(inputs) not in ([INPUTS[0]], list(INPUTS)):
        raise ValueError(f"model inputs {list(inputs)}: cmbflow detectors read [swi] or [swi, phase]")
    missing = [name for name in inputs if not files.get(name)]
    if missing:
        raise ValueError(f"{files.get('swi', 'this subject')}: the model reads {', '.join(inputs)}, but the subject has no "
                         f"{', '.join(missing)} (a dataset without phase); use a one-channel model (inputs: [swi]) on it")
    swi = nib.load(files["swi"])
    with ThreadPoolExecutor(max(1, min(threads, 1 + len(inputs)))) as pool:
        mask = pool.submit(read_nifti_array, files["brainmask"])  # small: first
        reads = {name: pool.submit(read_nifti_array, files[name], np.float32) for name in inputs}
        brain = mask.result() > 0
        channels = [reads["swi"].result()]
        if "phase" in inputs:
            try:
                channels.append(phase_scaling.apply(reads["phase"].result(), brain))
            except ValueError as error:  # name the file: the scaling alone does not know it
                raise ValueError(f"{files['phase']}: {error}") from error
    return ModelInput(np.stack(channels), brain, swi.affine, tuple(float(v) for v in swi.header.get_zooms()[:3]))
