"""Intensities: N4 bias correction, robust SWI scaling, phase to one range and sign.

* **SWI scaling**: ``(swi - p_low) / (p_high - p_low)`` with the percentiles taken inside
  the brain mask (defaults 1 and 99), then clipped to ``[-1, 2]``. Percentiles, not
  mean/std, because CMBs, veins and a few bright vessels are outliers that would move
  a mean; the brain's bulk lands in [0, 1] at every site, whatever the scanner's gain.
* **Phase**: radians times the dataset's ``phase_sign``, divided by pi, so [-1, 1]. With
  the sign applied, a paramagnetic source (CMB, vein) has the same phase pattern at every
  site: the convention of the synthetic internal site, ``phase = -gamma * dB * TE``, i.e.
  negative phase in the lobes along B0 of a paramagnetic sphere.
"""

from __future__ import annotations

import ants
import numpy as np

SWI_CLIP = (-1.0, 2.0)


FOREGROUND_MM = 2.0


def foreground_mask(image: ants.ANTsImage, working_mm: float = FOREGROUND_MM) -> ants.ANTsImage:
    """The head (``ants.get_mask``: above the mean intensity, morphologically cleaned, largest
    component, holes filled) on the grid of ``image``, found on a copy at ``working_mm``
    isotropic and brought back by nearest neighbour. The clean-up's morphology was the
    costliest step of preprocessing a 0.6 mm scan (6.9 s, 0.7 s this way; Dice 0.98 between the
    two masks); the mask only bounds N4's fit and the crop, which has a 10 mm margin."""
    if min(image.spacing) >= working_mm:
        return ants.get_mask(image)
    coarse = ants.resample_image(image, (working_mm,) * 3, use_voxels=False, interp_type=0)
    return ants.resample_image_to_target(ants.get_mask(coarse), image, interp_type="nearestNeighbor")


def n4_shrink(spacing, shrink_factor: int = 4, shrink_mm: float = 4.0) -> int:
    """N4's shrink factor for an image of voxel ``spacing`` (mm): at least ``shrink_factor``,
    raised until the finest shrunk axis is about ``shrink_mm``. The bias field is smooth on
    that scale, and a fixed factor made N4 on a 0.7 mm scan take 45 s instead of 10."""
    return int(max(shrink_factor, round(shrink_mm / float(min(spacing)))))


def n4_correct(image: ants.ANTsImage, mask: ants.ANTsImage, shrink_factor: int = 4,
               iterations=(50, 50, 30), spline_distance_mm: float = 100.0) -> ants.ANTsImage:
    """N4 bias field correction (ANTs) of a magnitude image inside ``mask``.

    ``spline_distance_mm``: B-spline knot spacing of the bias field; receive fields of head
    coils vary over 10 cm or more, and a finer mesh would start to fit anatomy.
    """
    return ants.n4_bias_field_correction(image, mask=mask, shrink_factor=shrink_factor,
                                         convergence={"iters": list(iterations), "tol": 1e-6},
                                         spline_param=spline_distance_mm)


def robust_scale(swi: np.ndarray, brain_mask: np.ndarray, percentiles=(1.0, 99.0)) -> tuple[np.ndarray, tuple[float, float]]:
    """SWI scaled by brain percentiles (module docstring); returns ``(scaled, (p_low, p_high))``."""
    inside = swi[brain_mask > 0]
    if inside.size == 0:
        raise ValueError("brain mask is empty; cannot scale intensities")
    low, high = (float(v) for v in np.percentile(inside, percentiles))
    if high <= low:
        raise ValueError(f"SWI is constant inside the brain ({low:g}); cannot scale intensities")
    scaled = np.clip((swi - low) / (high - low), *SWI_CLIP).astype(np.float32)
    return scaled, (low, high)


def normalize_phase(radians: np.ndarray, phase_sign: int) -> np.ndarray:
    """Phase in radians -> ``phase_sign * radians / pi`` in [-1, 1] (float32)."""
    if phase_sign not in (1, -1):
        raise ValueError(f"phase_sign must be 1 or -1, not {phase_sign!r}")
    return np.clip(phase_sign * radians / np.pi, -1.0, 1.0).astype(np.float32)
