"""Susceptibility sources placed in a subject: microbleeds, calcifications and veins.

Geometry is handled in *grid mm*: ``index * spacing`` along the axes of the simulation grid,
an orthonormal frame, so distances are physical. World mm RAS+ are computed only for the
tables written out (through the grid's affine).

* CMB: strongly paramagnetic ellipsoid (chi +0.4..+1.2 ppm, haemosiderin), very short T2*
  (R2* 300-500 /s), 2-10 mm diameter, skewed towards small ones as in patients.
* Calcification: diamagnetic sphere (chi -0.4..-1.2 ppm), short T2*, low proton density;
  the classic CMB mimic with the opposite phase sign.
* Vein: paramagnetic tube (deoxygenated blood, chi +0.3..+0.5 ppm, R2* 45 /s); medullary
  veins run through deep white matter, pial veins along the cortical surface. The same
  phase sign as a CMB but tubular, continuous across slices.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation


@dataclass
class Focus:
    """An ellipsoidal source; ``centre`` in grid mm, ``semi_axes`` mm, ``rotation`` (3, 3)."""

    kind: str  # "cmb" or "calcification"
    centre: np.ndarray
    semi_axes: np.ndarray
    rotation: np.ndarray
    chi: float
    r2star: float
    m0: float
    region: int = 0

    @property
    def diameter(self) -> float:
        return float(2 * np.mean(self.semi_axes))

    def occupancy(self, points: np.ndarray, spacing: float) -> np.ndarray:
        """Fraction of a voxel of edge ``spacing`` inside the ellipsoid, for points ``(..., 3)`` grid mm.

        A linear ramp of one voxel across the surface (signed distance approximated in the
        ellipsoid's normalized frame), which keeps the volume right on coarse grids.
        """
        local = (points - self.centre) @ self.rotation
        rho = np.sqrt(((local / self.semi_axes) ** 2).sum(-1))
        signed = (1.0 - rho) * float(np.mean(self.semi_axes))
        return np.clip(signed / spacing + 0.5, 0.0, 1.0).astype(np.float32)


@dataclass
class Vein:
    """A tube along a polyline ``points`` ``(n, 3)`` grid mm of radius ``radius`` mm."""

    kind: str  # "medullary_vein" or "pial_vein"
    points: np.ndarray
    radius: float
    chi: float
    r2star: float = 45.0
    m0: float = 0.85
    region: int = 0
    extra: dict = field(default_factory=dict)

    def distance(self, query: np.ndarray) -> np.ndarray:
        """Distance (mm) from points ``(m, 3)`` grid mm to the polyline."""
        best = np.full(len(query), np.inf, np.float32)
        for a, b in zip(self.points[:-1], self.points[1:]):
            ab = b - a
            t = np.clip(((query - a) @ ab) / max(float(ab @ ab), 1e-9), 0.0, 1.0)
            d = np.linalg.norm(query - (a + t[:, None] * ab), axis=1)
            np.minimum(best, d, out=best)
        return best


def random_cmb(rng: np.random.Generator, centre, diameter_range, region: int, chi_range=(0.4, 1.2),
               r2star_factor: float = 1.0) -> Focus:
    """A microbleed: log-uniform diameter (more small than large), mild ellipticity; chi
    log-uniform over ``chi_range`` (ppm: faint to strong); R2* (3 T values) times ``r2star_factor``."""
    low, high = diameter_range
    diameter = float(np.exp(rng.uniform(np.log(low), np.log(high))))
    semi = diameter / 2 * rng.uniform(0.8, 1.2, 3)
    semi *= diameter / 2 / semi.mean()
    return Focus("cmb", np.asarray(centre, float), semi, Rotation.random(random_state=rng).as_matrix(),
                 chi=float(np.exp(rng.uniform(np.log(chi_range[0]), np.log(chi_range[1])))),
                 r2star=float(rng.uniform(300, 500) * r2star_factor), m0=0.6, region=region)


def random_calcification(rng: np.random.Generator, centre, region: int) -> Focus:
    """A calcification: diamagnetic sphere, 2-6 mm."""
    diameter = float(rng.uniform(2.0, 6.0))
    return Focus("calcification", np.asarray(centre, float), np.full(3, diameter / 2), np.eye(3),
                 chi=-float(rng.uniform(0.4, 1.2)), r2star=float(rng.uniform(150, 300)), m0=0.3, region=region)


def random_walk(rng: np.random.Generator, start, inside, spacing, length_mm: float, step_mm: float = 1.0,
                turn: float = 0.25, initial_direction=None) -> np.ndarray:
    """A smooth path from ``start`` (grid mm) that stays where ``inside(points)`` is true.

    Each step turns by Gaussian noise of ``turn`` (radians-ish); a step leaving the allowed
    set is retried with a new direction a few times before the walk ends.
    """
    direction = np.asarray(initial_direction if initial_direction is not None else rng.normal(size=3), float)
    direction /= np.linalg.norm(direction)
    points = [np.asarray(start, float)]
    for _ in range(int(length_mm / step_mm)):
        for _attempt in range(6):
            proposal = direction + rng.normal(0, turn, 3)
            proposal /= np.linalg.norm(proposal)
            nxt = points[-1] + step_mm * proposal
            if inside(nxt[None])[0]:
                direction = proposal
                points.append(nxt)
                break
            turn_back = rng.normal(size=3)
            direction = turn_back / np.linalg.norm(turn_back)
        else:
            break
    return np.array(points)
