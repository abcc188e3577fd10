"""Phase as scanners write it: units (radians, milliradians, degrees, integer codes, unwrapped radians)
detected and rescaled to wrapped radians, and raw phase (background field, wraps) told
apart from high-pass filtered phase.

A setting that contradicts the data (forced units, a code range that does not hold the
values) is refused rather than followed: a wrong rescaling silently changes every
CMB's phase.
"""

from __future__ import annotations

import logging

import numpy as np

from cmbflow.io.nifti import InputError
from cmbflow.phase_filter import highpass_phase, swi_weights

log = logging.getLogger(__name__)

RADIAN_TOLERANCE = 0.05
DEGREE_TOLERANCE = 0.5
UNITS = ("auto", "radians", "milliradians", "degrees", "scanner", "unwrapped")
# Milliradians: Philips phase as dcm2niix scales it (RescaleSlope/Intercept, e.g. 1.53455 and
# -3142: -3142..3142) and GE's integer phase. A wrapped phase fills its range, background noise
# included, so both extremes lie near +-1000 pi; a field map in Hz does not end there.
MILLIRADIAN_END_TOLERANCE = 0.02  # share of 1000 pi
# Raw (unfiltered) phase carries the background field: most of it is low-frequency, which a
# homodyne high-pass removes. Measured with a 10 mm filter (the default) on our three
# synthetic sites (filtered phase, 36 subjects): the low-frequency share
# median|low| / (median|low| + median|high|) was 0.16-0.61 and median|low| at most 0.74 rad;
# on the same subjects made raw (smooth background of three strengths plus an offset) the
# share was 0.78-0.95 or median|low| 1.2-1.9 rad, and on the real Siemens field-map phase
# (shared/data) the share was 0.96.
LOW_SHARE_RAW = 0.7
LOW_MEDIAN_RAW = 1.0  # radians
KIND_FILTER_MM = 10.0
KIND_SLICES = 16  # the filter works per slice: a subset of slices tells the kind as well
# A phase image that is no phase. Measured inside the head on our four synthetic sites (52
# subjects; filtered phase in radians and in scanner codes) and on the real Siemens phase of
# shared/data: Spearman rank correlation with the magnitude -0.22..0.39 (the SWI darkens where
# the phase is negative) and coherence 0.92-1.00 (:func:`phase_coherence`; a wrapping ramp of
# 3 rad a voxel reads 1.00); a magnitude given as the phase (the same file, another echo's,
# scaled to 12-bit codes, or with noise of 10 % of its maximum added) 0.84-1.00, uniform noise
# 0.00 and 0.005.
MAGNITUDE_LIKE_RHO = 0.75
MIN_COHERENCE = 0.3
# An SWI is the GRE magnitude darkened where the filtered phase is negative. :func:`swi_darkening`
# on our synthetic sites (the 52 subjects of run 8, SWI powers 2-5, 1.5-7 T, with each dataset's
# phase_sign), and on the GRE magnitudes of 18 of their draws simulated again: SWI 0.23-0.68,
# the same SWI with the phase's sign flipped 1.48-4.28, GRE 0.90-1.11 with either sign.
DARKENING_BAND = (0.4, 1.2)  # radians of filtered phase compared
SWI_DARKENING_MAX = 0.8  # below: an SWI, read with the right handedness
FLIPPED_DARKENING_MIN = 1.35  # above: an SWI whose phase has the other handedness
# The air of a magnitude is dark (Rayleigh noise near 0); the air of a phase holds random phase
# across its whole range. :func:`air_spread` measured 0.003-0.059 on magnitudes (the 52 subjects
# of run 8's four sites, the real Siemens magnitudes of shared/data) and 0.455-0.502 on their
# phases (radians and 12-bit codes; uniform noise gives 0.5).
PHASE_LIKE_AIR_SPREAD = 0.35  # from here up: air like a phase's
DARK_AIR_SPREAD = 0.15  # below: air like a magnitude's


# What a BIDS / dcm2niix sidecar says of a B0 field map (GE and Philips export one beside, or
# instead of, the gradient-echo phase): its values are Hz or rad/s, not a phase.
FIELD_MAP_UNITS = ("hz", "rad/s", "ppm")
FIELD_MAP_TYPES = ("FIELDMAPHZ", "FIELDMAP", "B0MAP", "B0 MAP")


def field_map_marks(image_type, units) -> str:
    """What in a sidecar's ``ImageType`` and ``Units`` says the image is a B0 field map, or ``""``."""
    types = {str(t).upper() for t in image_type} if isinstance(image_type, list) else set()
    if str(units or "").strip().lower() in FIELD_MAP_UNITS:
        return f"Units {units!r}"
    marked = sorted(types & set(FIELD_MAP_TYPES))
    return f"ImageType {marked}" if marked else ""


def _integer_valued(values: np.ndarray) -> bool:
    sample = values[:: max(1, values.size // 200_000)]
    return bool(np.all(np.abs(sample - np.rint(sample)) < 1e-3))


def detect_phase_units(phase: np.ndarray) -> str:
    """Units of a phase image from its values: ``radians`` (all in [-pi, 2 pi]), ``degrees``
    (all in [-180, 360], spanning more than 90), ``milliradians`` (both extremes within 2 % of
    +-1000 pi), ``scanner`` (other integer codes), or ``ambiguous`` (non-integer values beyond
    any wrapped range: unwrapped radians, or a field map in Hz, which the values alone cannot
    tell apart)."""
    finite = phase[np.isfinite(phase)]
    lo, hi = float(finite.min()), float(finite.max())
    if lo >= -np.pi - RADIAN_TOLERANCE and hi <= 2 * np.pi + RADIAN_TOLERANCE:
        return "radians"
    if lo >= -180 - DEGREE_TOLERANCE and hi <= 360 + DEGREE_TOLERANCE and hi - lo > 90:
        return "degrees"
    end = 1000 * np.pi
    if abs(lo + end) <= MILLIRADIAN_END_TOLERANCE * end and abs(hi - end) <= MILLIRADIAN_END_TOLERANCE * end:
        return "milliradians"
    return "scanner" if _integer_valued(finite) else "ambiguous"


def scanner_code_range(phase: np.ndarray) -> tuple[float, float]:
    """Integer code range of a scanner phase image: signed ``[-2^n, 2^n - 1]`` or unsigned
    ``[0, 2^n - 1]`` for the smallest ``n`` that holds the data (12 bits -> 0..4095,
    Siemens; 13 bits signed -> -4096..4095, dcm2niix)."""
    lo, hi = float(phase.min()), float(phase.max())
    bits = int(np.ceil(np.log2(max(-lo, hi + 1, 2))))
    return (-(2.0**bits), 2.0**bits - 1) if lo < 0 else (0.0, 2.0**bits - 1)


def _wrap(radians: np.ndarray) -> np.ndarray:
    return (np.mod(radians.astype(np.float64) + np.pi, 2 * np.pi) - np.pi).astype(np.float32)


def _check_forced(phase: np.ndarray, units: str, code_range, source: str) -> None:
    """Refuse forced units or a code range that the values contradict."""
    finite = phase[np.isfinite(phase)]
    lo, hi = float(finite.min()), float(finite.max())
    fix = "Remove phase_units (auto detects) or set it to what the file holds."
    if units == "radians" and (lo < -np.pi - RADIAN_TOLERANCE or hi > 2 * np.pi + RADIAN_TOLERANCE):
        raise InputError(f"{source}: phase_units is radians, but the values span {lo:.4g}..{hi:.4g}, beyond [-pi, 2 pi]. {fix}")
    if units == "degrees" and (lo < -360 - DEGREE_TOLERANCE or hi > 360 + DEGREE_TOLERANCE):
        raise InputError(f"{source}: phase_units is degrees, but the values span {lo:.4g}..{hi:.4g}, beyond +-360. {fix}")
    if units == "milliradians" and (lo < -2000 * np.pi * (1 + MILLIRADIAN_END_TOLERANCE)
                                    or hi > 2000 * np.pi * (1 + MILLIRADIAN_END_TOLERANCE)):
        raise InputError(f"{source}: phase_units is milliradians, but the values span {lo:.4g}..{hi:.4g}, beyond "
                         f"+-2000 pi. {fix}")
    if units == "scanner" and not _integer_valued(finite):
        raise InputError(f"{source}: phase_units is scanner, but the values ({lo:.4g}..{hi:.4g}) are not integer codes. {fix}")
    if code_range is not None:
        if units not in ("auto", "scanner"):
            raise InputError(f"{source}: phase_code_range is set but phase_units is {units}; a code range applies to "
                             "scanner codes only. Remove one of the two.")
        c_lo, c_hi = (float(v) for v in code_range)
        if c_hi <= c_lo or lo < c_lo - 0.5 or hi > c_hi + 0.5:
            raise InputError(f"{source}: phase_code_range [{c_lo:g}, {c_hi:g}] does not hold the values ({lo:g}..{hi:g}). "
                             "Remove phase_code_range (it is inferred from the data) or give the scanner's real range.")


def phase_to_radians(phase: np.ndarray, units: str = "auto", code_range: tuple[float, float] | None = None,
                     source: str = "phase image") -> tuple[np.ndarray, str]:
    """Return ``(phase in radians, wrapped to [-pi, pi), description of what was done)``.

    ``units``: ``auto`` (detect), ``radians``, ``milliradians``, ``degrees``, ``scanner`` (integer codes) or
    ``unwrapped`` (radians beyond one wrap; wrapped here, so raw-phase filtering applies);
    ``code_range`` forces the integer range of scanner codes (else inferred, see
    :func:`scanner_code_range`). Raises :class:`InputError` when ``auto`` cannot tell the
    units, or when forced units or the code range contradict the values.
    """
    if units not in UNITS:
        raise InputError(f"{source}: phase_units must be one of {', '.join(UNITS)}, not {units!r}.")
    if code_range is not None and (units == "auto"):
        units = "scanner"  # a code range says the file holds scanner codes
    _check_forced(phase, units, code_range, source)
    detected = detect_phase_units(phase) if units == "auto" else units
    how = "detected" if units == "auto" else "set in config"
    if detected == "ambiguous":
        finite = phase[np.isfinite(phase)]
        raise InputError(f"{source}: phase values span {float(finite.min()):.4g}..{float(finite.max()):.4g} and are not "
                         "integer scanner codes: this is unwrapped phase (radians) or a field map (Hz, ppm), which the "
                         "values alone cannot tell apart. For unwrapped radians set the dataset's phase_units: unwrapped; "
                         "a field map is not a phase image: give the scanner's phase instead.")
    if detected == "radians":
        radians, note = _wrap(phase), f"phase in radians ({how})"
    elif detected == "degrees":
        radians, note = _wrap(np.deg2rad(phase.astype(np.float64))), f"phase in degrees ({how}) converted to radians"
    elif detected == "milliradians":
        radians, note = _wrap(phase.astype(np.float64) / 1000), f"phase in milliradians ({how}) converted to radians"
    elif detected == "unwrapped":
        radians, note = _wrap(phase), f"unwrapped phase in radians ({how}) wrapped to [-pi, pi)"
    else:
        lo, hi = code_range if code_range is not None else scanner_code_range(phase)
        radians = ((phase.astype(np.float64) - lo) / (hi - lo + 1) * 2 * np.pi - np.pi).astype(np.float32)
        note = f"phase in scanner units {lo:g}..{hi:g} ({how}) rescaled to radians"
    log.info("%s: %s", source, note)
    return radians, note


def head_voxels(magnitude: np.ndarray) -> np.ndarray:
    """Voxels of the head: magnitude above a fifth of its 99th percentile (air and noise lie below)."""
    finite = np.isfinite(magnitude)
    level = 0.2 * float(np.percentile(magnitude[finite], 99)) if finite.any() else 0.0
    return finite & (magnitude > level)


def _kind_slices(head: np.ndarray) -> np.ndarray:
    """Up to :data:`KIND_SLICES` slice indices spread through the head (last axis)."""
    slices = np.flatnonzero(head.any(axis=(0, 1)))
    return slices[np.unique(np.linspace(0, slices.size - 1, min(KIND_SLICES, slices.size)).round().astype(int))]


def low_frequency_phase(radians: np.ndarray, magnitude: np.ndarray, voxel_mm) -> tuple[float, float]:
    """``(low-frequency share, median |low-frequency phase|)`` inside the head: how much of
    the phase a homodyne high-pass of :data:`KIND_FILTER_MM` removes (see
    :data:`LOW_SHARE_RAW`). Measured on up to :data:`KIND_SLICES` slices through the head."""
    head = head_voxels(magnitude)
    chosen = _kind_slices(head)
    if chosen.size == 0:
        return 0.0, 0.0
    phase, mag, inside = radians[..., chosen], magnitude[..., chosen], head[..., chosen]
    high = highpass_phase(mag, phase, voxel_mm, KIND_FILTER_MM)
    low = np.angle(np.exp(1j * (phase - high)))
    low_median, high_median = float(np.median(np.abs(low[inside]))), float(np.median(np.abs(high[inside])))
    return low_median / max(low_median + high_median, 1e-6), low_median


def magnitude_rank_correlation(phase: np.ndarray, magnitude: np.ndarray) -> float:
    """Spearman correlation of the phase image's values as stored (any units: wrapping to
    radians would fold a magnitude's ranks) with the magnitude inside the head, on at most
    100,000 voxels: near 0 for a phase, near 1 for a second magnitude image given as the phase."""
    from scipy.stats import spearmanr

    inside = np.flatnonzero(head_voxels(magnitude).ravel())
    if inside.size < 3:
        return 0.0
    inside = inside[:: max(1, inside.size // 100_000)]
    phase, mag = phase.ravel()[inside], magnitude.ravel()[inside]
    if np.ptp(phase) == 0 or np.ptp(mag) == 0:
        return 0.0
    return float(spearmanr(mag, phase).statistic)


def air_spread(values: np.ndarray) -> float:
    """Interquartile range of an image's eight corner blocks (an eighth of each axis, at least
    two voxels: air in any head scan) over its 1st-99th percentile range, values as stored.
    A magnitude reads near 0 (dark air), a phase near 0.5 (random phase in the air), a phase
    masked to 0 outside the head 0. Voxel values only; no voxel index or world position is returned."""
    n = [max(2, size // 8) for size in values.shape[:3]]
    ends = [(slice(0, k), slice(-k, None)) for k in n]
    corners = np.concatenate([values[x, y, z].ravel() for x in ends[0] for y in ends[1] for z in ends[2]]).astype(np.float64)
    finite = values.ravel()[:: max(1, values.size // 1_000_000)]  # percentiles of a million voxels are as good
    finite, corners = finite[np.isfinite(finite)], corners[np.isfinite(corners)]
    if finite.size == 0 or corners.size == 0:
        return 0.0
    low, high = np.percentile(finite, [1, 99])
    q1, q3 = np.percentile(corners, [25, 75])
    return float((q3 - q1) / (high - low)) if high > low else 0.0


def phase_coherence(radians: np.ndarray, magnitude: np.ndarray) -> float:
    """How smooth the phase is inside the head: ``|mean exp(i * second difference)|`` along
    each in-plane axis (the smaller of the two), on up to :data:`KIND_SLICES` slices. Second
    differences, so steep background fields and their wraps still read as smooth (close to 1);
    noise reads close to 0."""
    head = head_voxels(magnitude)
    chosen = _kind_slices(head)
    if chosen.size == 0:
        return 1.0
    phase, inside = radians[..., chosen].astype(np.float32), head[..., chosen]
    values = []
    for axis in (0, 1):
        p, h = np.moveaxis(phase, axis, 0), np.moveaxis(inside, axis, 0)
        both = h[2:] & h[1:-1] & h[:-2]
        if both.any():
            values.append(float(np.abs(np.exp(1j * (p[2:] - 2 * p[1:-1] + p[:-2])[both]).mean())))
    return min(values) if values else 1.0


def swi_darkening(radians: np.ndarray, magnitude: np.ndarray, voxel_mm, raw: bool) -> float:
    """How much darker the magnitude is where the high-pass filtered phase is moderately
    negative (-1.2..-0.4 rad, right-handed: paramagnetic) than where it is as positive, each
    voxel against its neighbourhood (the magnitude over its smoothed grey closing), on up to
    :data:`KIND_SLICES` slices inside the head. An SWI is darkened by its negative-phase mask:
    below :data:`SWI_DARKENING_MAX`; a plain GRE magnitude about 1; an SWI read with the wrong
    phase handedness above :data:`FLIPPED_DARKENING_MIN`. ``raw``: high-pass the phase first (as
    preprocessing will). NaN when either band is empty."""
    from scipy import ndimage

    weights = swi_weights(magnitude, voxel_mm)  # dark spots filled: the neighbourhood's level
    head = head_voxels(weights)
    chosen = _kind_slices(head)
    if chosen.size == 0:
        return float("nan")
    phase, mag, inside, level = radians[..., chosen], magnitude[..., chosen], head[..., chosen], weights[..., chosen]
    if raw:
        phase = highpass_phase(mag, phase, voxel_mm, KIND_FILTER_MM)
    sigma = [3.0 / float(v) for v in list(voxel_mm)[:2]] + [0.0]  # 3 mm in-plane, per slice like the filter
    relative = mag / np.maximum(ndimage.gaussian_filter(level.astype(np.float32), sigma), 1e-6)
    low, high = DARKENING_BAND
    negative = inside & (phase > -high) & (phase < -low)
    positive = inside & (phase > low) & (phase < high)
    if not negative.any() or not positive.any():
        return float("nan")
    return float(np.median(relative[negative]) / np.median(relative[positive]))


def phase_kind(radians: np.ndarray, magnitude: np.ndarray, voxel_mm) -> str:
    """``raw`` (carries the background field, may wrap) or ``filtered`` (high-pass), from
    :func:`low_frequency_phase` against :data:`LOW_SHARE_RAW` and :data:`LOW_MEDIAN_RAW`."""
    share, median = low_frequency_phase(radians, magnitude, voxel_mm)
    return "raw" if share >= LOW_SHARE_RAW or median >= LOW_MEDIAN_RAW else "filtered"
