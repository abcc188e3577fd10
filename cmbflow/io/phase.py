"""Phase units: radians or scanner integer codes, detected and rescaled to radians."""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

RADIAN_TOLERANCE = 0.05


def detect_phase_units(phase: np.ndarray) -> str:
    """``"radians"`` if all values lie in [-pi, 2 pi] (plus a small tolerance), else ``"scanner"``."""
    finite = phase[np.isfinite(phase)]
    lo, hi = float(finite.min()), float(finite.max())
    if lo >= -np.pi - RADIAN_TOLERANCE and hi <= 2 * np.pi + RADIAN_TOLERANCE:
        return "radians"
    return "scanner"


def scanner_code_range(phase: np.ndarray) -> tuple[float, float]:
    """Integer code range of a scanner phase image: signed ``[-2^n, 2^n - 1]`` or unsigned
    ``[0, 2^n - 1]`` for the smallest ``n`` that holds the data (12 bits -> 0..4095,
    Siemens; 13 bits signed -> -4096..4095, dcm2niix)."""
    lo, hi = float(phase.min()), float(phase.max())
    bits = int(np.ceil(np.log2(max(-lo, hi + 1, 2))))
    return (-(2.0**bits), 2.0**bits - 1) if lo < 0 else (0.0, 2.0**bits - 1)


def phase_to_radians(phase: np.ndarray, units: str = "auto", code_range: tuple[float, float] | None = None,
                     source: str = "phase image") -> tuple[np.ndarray, str]:
    """Return ``(phase in radians [-pi, pi), description of what was done)``.

    ``units``: ``auto`` (detect), ``radians`` or ``scanner``; ``code_range`` forces the
    integer range of scanner codes (else inferred, see :func:`scanner_code_range`).
    """
    if units not in ("auto", "radians", "scanner"):
        raise ValueError(f"phase units must be auto, radians or scanner, not {units!r}")
    detected = detect_phase_units(phase) if units == "auto" else units
    if detected == "radians":
        radians = (np.mod(phase.astype(np.float64) + np.pi, 2 * np.pi) - np.pi).astype(np.float32)
        note = "phase in radians" + (" (detected)" if units == "auto" else " (forced by config)")
    else:
        lo, hi = code_range if code_range is not None else scanner_code_range(phase)
        radians = ((phase.astype(np.float64) - lo) / (hi - lo + 1) * 2 * np.pi - np.pi).astype(np.float32)
        how = "detected" if units == "auto" else "forced by config"
        note = f"phase in scanner units {lo:g}..{hi:g} ({how}) rescaled to radians"
    log.info("%s: %s", source, note)
    return radians, note
