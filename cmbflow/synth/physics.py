"""MR physics of the generator: susceptibility -> field -> complex GRE signal -> SWI.

Units: susceptibility ``chi`` and field ``delta_b`` in ppm (field relative to B0), R2* in
1/s, TE in ms, phase in radians. Grids are arrays indexed by voxel; their physical layout
is given by ``spacing`` (mm per axis) and ``b0_axes``, the unit B0 direction expressed in
the array's axes (so B0 may be oblique to the slices).

Phase sign: ``phase = -gamma * B0 * delta_b * TE`` (right-handed convention, Haacke et al.),
so a paramagnetic source gives a negative phase where its field is positive (inside a
vessel parallel to B0) and the SWI negative-phase mask darkens it.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import fft as sp_fft

from cmbflow.phase_filter import homodyne_phase, swi_from  # noqa: F401  (the generator filters as scanners do)

GAMMA_MHZ_PER_T = 42.577478


def dipole_kernel(shape, spacing, b0_axes) -> np.ndarray:
    """Unit dipole kernel ``D(k) = 1/3 - (k.b)^2 / |k|^2`` for ``rfftn`` of ``shape``.

    ``spacing`` in mm per axis; ``b0_axes`` the unit B0 direction in array axes. D(0) = 0
    (the field is defined up to a constant offset).
    """
    b = np.asarray(b0_axes, float)
    b = b / np.linalg.norm(b)
    k0 = np.fft.fftfreq(shape[0], d=spacing[0]).astype(np.float32)[:, None, None]
    k1 = np.fft.fftfreq(shape[1], d=spacing[1]).astype(np.float32)[None, :, None]
    k2 = np.fft.rfftfreq(shape[2], d=spacing[2]).astype(np.float32)[None, None, :]
    k_dot_b = k0 * b[0] + k1 * b[1] + k2 * b[2]
    k_sq = k0**2 + k1**2 + k2**2
    k_sq[0, 0, 0] = 1.0
    kernel = np.float32(1.0 / 3.0) - k_dot_b**2 / k_sq
    kernel[0, 0, 0] = 0.0
    return kernel


@lru_cache(maxsize=4)
def _shared_dipole_kernel(shape: tuple[int, ...], spacing: tuple[float, ...], b0_axes: tuple[float, ...]) -> np.ndarray:
    """:func:`dipole_kernel`, read-only and kept: a subject's tissue and lesion fields share one
    grid, and its kernel takes 0.7 s to build at 1 mm."""
    kernel = dipole_kernel(shape, spacing, b0_axes)
    kernel.flags.writeable = False
    return kernel


def field_from_susceptibility(chi: np.ndarray, spacing, b0_axes, pad_fraction: float = 0.25, workers: int = -1) -> np.ndarray:
    """Relative field shift (ppm) of a susceptibility map (ppm) by k-space dipole convolution.

    The map is zero-padded by ``pad_fraction`` of each axis to limit wrap-around of the
    periodic convolution. Returns float32 of ``chi.shape``.
    """
    pads = [sp_fft.next_fast_len(int(n * (1 + 2 * pad_fraction)), real=True) for n in chi.shape]
    padded = np.zeros(pads, np.float32)
    padded[: chi.shape[0], : chi.shape[1], : chi.shape[2]] = chi
    spectrum = sp_fft.rfftn(padded, workers=workers)
    spectrum *= _shared_dipole_kernel(tuple(pads), tuple(spacing), tuple(b0_axes))  # the values as given (their dtypes too)
    field = sp_fft.irfftn(spectrum, s=pads, workers=workers)
    return field[: chi.shape[0], : chi.shape[1], : chi.shape[2]].astype(np.float32)


def phase_per_ppm(te_ms: float, b0_tesla: float) -> float:
    """Radians of phase accrued at TE per ppm of field (negative: see module docstring)."""
    return -2.0 * np.pi * GAMMA_MHZ_PER_T * b0_tesla * te_ms * 1e-3


def gre_signal(m0, r2star, delta_b, te_ms: float, b0_tesla: float) -> np.ndarray:
    """Complex GRE signal ``M0 exp(-R2* TE) exp(i phase)`` (complex64), per (sub-)voxel."""
    te_s = te_ms * 1e-3
    magnitude = m0 * np.exp(-r2star * te_s)
    phase = np.float32(phase_per_ppm(te_ms, b0_tesla)) * delta_b
    return (magnitude * np.exp(1j * phase)).astype(np.complex64)


def average_blocks(signal: np.ndarray, factors) -> np.ndarray:
    """Average a supersampled grid over ``factors`` sub-voxels per axis (intravoxel dephasing)."""
    a, b, c = factors
    n0, n1, n2 = (s // f for s, f in zip(signal.shape, factors))
    return signal.reshape(n0, a, n1, b, n2, c).mean(axis=(1, 3, 5))


def sphere_field_analytic(chi_ppm: float, radius: float, r: float, cos_theta: float) -> float:
    """Field (ppm) outside a uniformly magnetized sphere: ``chi/3 (a/r)^3 (3 cos^2 - 1)``."""
    return chi_ppm / 3.0 * (radius / r) ** 3 * (3 * cos_theta**2 - 1)
