"""Per-subject anatomy: a random affine plus a smooth non-linear warp of the template.

The mapping goes from the subject's world frame (mm RAS+ of the scanner) to the template's
world frame (mm RAS+, MNI): ``x_tpl = A (x - c_subj) + c_tpl + d(x)``. ``d`` is a sum of
random low-frequency sinusoids (a smooth random field, wavelengths 60-160 mm), cheap to
evaluate at any point and differentiable everywhere, so the warp stays diffeomorphic for
the small amplitudes used. Atrophy adds a radial expansion around the ventricles
(``expansion``, see :meth:`SubjectWarp.to_template`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation


@dataclass
class SubjectWarp:
    """Subject world mm RAS+ -> template world mm RAS+ (see module docstring)."""

    matrix: np.ndarray  # (3, 3)
    subject_centre: np.ndarray  # (3,) world mm
    template_centre: np.ndarray  # (3,) world mm
    frequencies: np.ndarray  # (3, n_terms, 3) cycles/mm
    phases: np.ndarray  # (3, n_terms)
    amplitudes: np.ndarray  # (3, n_terms) mm
    expansion: float = 0.0  # atrophy: radial widening around expansion_centre (template mm), 0 none, < 1
    expansion_centre: np.ndarray | None = None
    expansion_sigma_mm: float = 25.0

    @classmethod
    def identity(cls, template_centre) -> "SubjectWarp":
        c = np.asarray(template_centre, float)
        return cls(np.eye(3), c, c, np.zeros((3, 1, 3)), np.zeros((3, 1)), np.zeros((3, 1)))

    @classmethod
    def random(cls, rng: np.random.Generator, template_centre, rotation_deg: float = 6.0,
               scale_sd: float = 0.04, shift_mm: float = 4.0, warp_mm: float = 2.5, n_terms: int = 4) -> "SubjectWarp":
        """Draw a head pose (rotation, anisotropic scale, shift) and a smooth warp."""
        rotation = Rotation.from_euler("xyz", rng.normal(0, rotation_deg, 3), degrees=True).as_matrix()
        scale = np.diag(1.0 / np.clip(rng.normal(1.0, scale_sd, 3), 0.85, 1.15))
        wavelengths = rng.uniform(60.0, 160.0, (3, n_terms))
        directions = rng.normal(size=(3, n_terms, 3))
        directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
        return cls(
            matrix=scale @ rotation,
            subject_centre=rng.normal(0, shift_mm, 3),
            template_centre=np.asarray(template_centre, float),
            frequencies=directions / wavelengths[..., None],
            phases=rng.uniform(0, 2 * np.pi, (3, n_terms)),
            amplitudes=rng.normal(0, warp_mm / np.sqrt(n_terms), (3, n_terms)),
        )

    def to_template(self, xyz: np.ndarray) -> np.ndarray:
        """Map world mm points ``(..., 3)`` of the subject to template world mm ``(..., 3)``."""
        xyz = np.asarray(xyz, np.float32)
        rel = xyz - self.subject_centre.astype(np.float32)
        out = rel @ self.matrix.T.astype(np.float32) + self.template_centre.astype(np.float32)
        for axis in range(3):
            for term in range(self.frequencies.shape[1]):
                if self.amplitudes[axis, term] == 0:
                    continue
                arg = rel @ (2 * np.pi * self.frequencies[axis, term]).astype(np.float32) + np.float32(self.phases[axis, term])
                out[..., axis] += np.float32(self.amplitudes[axis, term]) * np.sin(arg)
        if self.expansion > 0:
            # y = c + (y - c)(1 - a g(|y - c|)), g Gaussian: monotone in the radius for a < 1, so the
            # structures around c (the ventricles) appear wider in the subject.
            offset = out - np.asarray(self.expansion_centre, np.float32)
            gauss = np.exp(-(offset**2).sum(-1, keepdims=True) / np.float32(2 * self.expansion_sigma_mm**2))
            out -= np.float32(self.expansion) * gauss * offset
        return out
