"""A residual background field added to a training patch: the wraps a high-pass leaves near air.

Near the sinuses and the ear canals the background field changes faster than any homodyne
high-pass removes, so a preprocessed phase still wraps there, and an SWI formed from it shows
dark bands where the residual is negative. CMBs in such zones were the ones our detectors
never found on the home site (docs/results.md), and the generator rarely puts one there. So a
share of training patches gets a smooth random field: added to the phase (wrapped again to
(-pi, pi]) and, as a scanner's negative-phase mask would, darkening the SWI where it is
negative. No MONAI transform adds a wrapped field, hence this one.
"""

from __future__ import annotations

import numpy as np
import torch
from monai.transforms import MapTransform, RandomizableTransform

SWI_POWER = 4  # the negative-phase mask's power (Haacke et al. 2004), as preprocessing forms an SWI


class RandResidualFieldd(RandomizableTransform, MapTransform):
    """With probability ``prob``, add ``f(x) = offset + g . (x - c) + q |x - c|^2 / 2`` (radians,
    ``x`` in patch voxel indices scaled by ``spacing`` to mm, ``c`` the patch centre) to the phase
    channel, whose values are ``radians / pi`` in [-1, 1], and multiply the SWI by the
    negative-phase mask of ``f`` to the 4th power.

    ``gradient_rad_per_mm``: the range of ``|g|`` (direction uniform on the sphere);
    ``curvature_rad_per_mm2``: the range of ``|q|`` (either sign)."""

    def __init__(self, swi_key: str, phase_key: str, spacing, prob: float = 0.25,
                 gradient_rad_per_mm: tuple[float, float] = (0.1, 0.6), curvature_rad_per_mm2: tuple[float, float] = (0.0, 0.01)):
        MapTransform.__init__(self, [swi_key, phase_key])
        RandomizableTransform.__init__(self, prob)
        self.swi_key, self.phase_key = swi_key, phase_key
        self.spacing = np.asarray(spacing, float)
        self.gradient = gradient_rad_per_mm
        self.curvature = curvature_rad_per_mm2
        self._draw: tuple[float, np.ndarray, float] | None = None

    def randomize(self, data=None) -> None:
        super().randomize(None)
        if not self._do_transform:
            return
        direction = self.R.normal(size=3)
        direction /= np.linalg.norm(direction)
        gradient = direction * self.R.uniform(*self.gradient)
        curvature = self.R.uniform(*self.curvature) * self.R.choice([-1.0, 1.0])
        self._draw = (self.R.uniform(-np.pi, np.pi), gradient, curvature)

    def field(self, shape) -> torch.Tensor:
        """The drawn field (radians) on a patch of ``shape`` voxels."""
        offset, gradient, curvature = self._draw
        axes = [(np.arange(n) - (n - 1) / 2) * step for n, step in zip(shape, self.spacing)]
        x, y, z = np.meshgrid(*axes, indexing="ij")
        field = offset + gradient[0] * x + gradient[1] * y + gradient[2] * z + curvature * (x * x + y * y + z * z) / 2
        return torch.as_tensor(field, dtype=torch.float32)

    def __call__(self, data):
        self.randomize()
        if not self._do_transform:
            return data
        out = dict(data)
        phase = torch.as_tensor(out[self.phase_key])
        field = self.field(phase.shape[1:])
        radians = torch.remainder(phase.float() * np.pi + field + np.pi, 2 * np.pi) - np.pi
        out[self.phase_key] = (radians / np.pi).to(phase.dtype)
        mask = torch.clamp(1 + torch.remainder(field + np.pi, 2 * np.pi).sub(np.pi) / np.pi, max=1.0) ** SWI_POWER
        out[self.swi_key] = torch.as_tensor(out[self.swi_key]) * mask.to(torch.as_tensor(out[self.swi_key]).dtype)
        return out
