"""Randomized physics: every training subject draws its own acquisition and appearance.

SynthSeg's lesson (Billot et al. 2023), kept physical: a network that sees one scanner learns
that scanner's grey levels. In the training mode (a site with ``randomize: true``) each
subject draws, from the ranges of config ``synth.randomization``,

* the **acquisition**: field strength (scales the phase per ppm and the R2* of every tissue),
  TE, in-plane and slice voxel size, slice tilt, storage orientation, SNR, receive-bias
  strength, background-field strength and the width of the homodyne high-pass;
* the **appearance**: per tissue class a factor on M0, R2* and chi (so no fixed grey-level
  relation between tissues holds), the head outside the brain (brightness of the soft
  tissue, signal and chi of the skull band, chi of the air cavities), atrophy (ventricles
  widened by a radial warp), the SWI phase-mask power, how faint or strong and how large
  the CMBs are, and the mimics (veins of every size and direction, calcifications).

It stays a simulation through :mod:`cmbflow.synth.physics` (dipole field, intravoxel
dephasing, averaging into acquisition voxels); only its inputs are drawn. Values drawn
uniformly unless the docstring of :class:`Randomization` says log-uniform. Everything drawn
is returned so the generator can write it next to the images.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from cmbflow.settings import FromConfig
from cmbflow.sites import SiteParams
from cmbflow.synth.tissue import (AIR_CLASS, BONE_CLASS, CSF_CLASS, GREY_CLASS, N_TISSUE_CLASSES, NUCLEI_CLASS, SOFT_TISSUE,
                                  WHITE_CLASS)

# Tissue classes whose M0 / R2* / chi are scaled by a per-subject factor.
SCALED_CLASSES = (CSF_CLASS, GREY_CLASS, WHITE_CLASS, NUCLEI_CLASS, SOFT_TISSUE, BONE_CLASS)


@dataclass(frozen=True)
class Appearance:
    """Per-subject appearance of the anatomy (identity for a fixed site).

    ``tissue_factors`` ``(8, 3)``: factor on M0, R2*, chi per tissue class (rows
    :data:`cmbflow.synth.tissue` classes). ``r2star_field_factor`` scales every R2* with the
    field strength. ``ventricle_expansion``: radial widening of the ventricles (0 none, 0.4:
    their radius grows by about 40 %). ``air_chi_ppm`` / ``bone_chi_ppm``: chi of the air
    cavities and the skull band relative to tissue. ``swi_power``: exponent of the SWI mask.
    """

    tissue_factors: np.ndarray = field(default_factory=lambda: np.ones((N_TISSUE_CLASSES, 3), np.float32))
    r2star_field_factor: float = 1.0
    ventricle_expansion: float = 0.0
    air_chi_ppm: float | None = None
    bone_chi_ppm: float | None = None
    bone_m0: float | None = None
    swi_power: int = 4

    @classmethod
    def of_site(cls, site: SiteParams) -> "Appearance":
        """The fixed appearance of a site that is not randomized (its config keys)."""
        return cls(ventricle_expansion=float(site.ventricle_expansion), swi_power=int(site.swi_power))

    def record(self) -> dict:
        """JSON-able record (written beside each subject)."""
        out = dataclasses.asdict(self)
        out["tissue_factors"] = np.round(self.tissue_factors, 4).tolist()
        return out


@dataclass(frozen=True)
class Randomization(FromConfig):
    """Ranges of the training mode (config ``synth.randomization``; see config.yaml for why).

    Pairs are ``[low, high]``; ``snr`` and the voxel sizes are drawn log-uniformly (a range
    over an order of magnitude), ``b0_tesla`` and ``orientations`` are choices.
    """

    section: ClassVar[str] = "synth.randomization"

    b0_tesla: tuple
    te_ms: tuple
    te_field_max: float  # largest TE x B0 (ms T): sites shorten TE at high field (7 T: <= 14 ms)
    inplane_mm: tuple
    slice_mm: tuple
    oblique_deg: tuple
    orientations: tuple
    snr: tuple
    bias_amplitude: tuple
    background_field_ppm: tuple
    homodyne_window_fraction: tuple
    m0_factor: tuple
    r2star_factor: tuple
    chi_factor: tuple
    soft_tissue_factor: tuple
    bone_m0: tuple
    bone_chi_ppm: tuple
    air_chi_ppm: tuple
    ventricle_expansion: tuple
    swi_power: tuple
    cmb_chi_ppm: tuple
    cmb_diameter_mm: tuple
    cmb_count_max: int
    medullary_veins: tuple
    pial_veins: tuple
    vein_radius_mm: tuple
    calcifications_max: int
    def draw(self, site: SiteParams, rng: np.random.Generator) -> tuple[SiteParams, Appearance]:
        """A subject's acquisition (``site`` with its drawn values) and appearance."""

        def uniform(pair):
            return float(rng.uniform(*pair))

        def log_uniform(pair):
            return float(np.exp(rng.uniform(np.log(pair[0]), np.log(pair[1]))))

        b0 = float(rng.choice(self.b0_tesla))
        inplane = log_uniform(self.inplane_mm)
        acquisition = dataclasses.replace(
            site,
            b0_tesla=b0,
            te_ms=uniform((self.te_ms[0], max(self.te_ms[0], min(self.te_ms[1], self.te_field_max / b0)))),
            voxel_mm=(inplane, inplane, log_uniform(self.slice_mm)),
            oblique_deg=float(uniform(self.oblique_deg) * rng.choice([-1, 1])),
            orientation=str(rng.choice(self.orientations)),
            snr=log_uniform(self.snr),
            bias_amplitude=uniform(self.bias_amplitude),
            background_field_ppm=uniform(self.background_field_ppm),
            homodyne_window_fraction=uniform(self.homodyne_window_fraction),
            cmb_chi_ppm=tuple(self.cmb_chi_ppm),
            cmb_diameter_mm=tuple(self.cmb_diameter_mm),
            cmb_count_max=int(self.cmb_count_max),
            medullary_veins=int(rng.integers(self.medullary_veins[0], self.medullary_veins[1] + 1)),
            pial_veins=int(rng.integers(self.pial_veins[0], self.pial_veins[1] + 1)),
            vein_radius_mm=tuple(self.vein_radius_mm),
            calcifications_max=int(self.calcifications_max),
        )
        factors = np.ones((N_TISSUE_CLASSES, 3), np.float32)
        for code in SCALED_CLASSES:
            factors[code] = [uniform(self.m0_factor), uniform(self.r2star_factor), uniform(self.chi_factor)]
        factors[SOFT_TISSUE, 0] = uniform(self.soft_tissue_factor)
        factors[AIR_CLASS] = 1.0
        appearance = Appearance(
            tissue_factors=factors,
            # R2* of tissue grows about linearly with B0 (Yablonskiy & Haacke 1994): 3 T is the table's field.
            r2star_field_factor=b0 / 3.0,
            ventricle_expansion=uniform(self.ventricle_expansion),
            air_chi_ppm=uniform(self.air_chi_ppm),
            bone_chi_ppm=uniform(self.bone_chi_ppm),
            bone_m0=uniform(self.bone_m0),
            swi_power=int(rng.integers(self.swi_power[0], self.swi_power[1] + 1)),
        )
        return acquisition, appearance

    def contains(self, site: SiteParams, appearance: Appearance) -> bool:
        """Whether a drawn acquisition and appearance lie within these ranges (tests, QC)."""
        checks = [
            site.b0_tesla in self.b0_tesla,
            self.te_ms[0] <= site.te_ms <= self.te_ms[1] and site.te_ms * site.b0_tesla <= self.te_field_max + 1e-6,
            self.inplane_mm[0] <= site.voxel_mm[0] <= self.inplane_mm[1],
            self.slice_mm[0] <= site.voxel_mm[2] <= self.slice_mm[1],
            self.oblique_deg[0] <= abs(site.oblique_deg) <= self.oblique_deg[1],
            site.orientation in self.orientations,
            self.snr[0] <= site.snr <= self.snr[1],
            self.bias_amplitude[0] <= site.bias_amplitude <= self.bias_amplitude[1],
            self.ventricle_expansion[0] <= appearance.ventricle_expansion <= self.ventricle_expansion[1],
            self.swi_power[0] <= appearance.swi_power <= self.swi_power[1],
            self.medullary_veins[0] <= site.medullary_veins <= self.medullary_veins[1],
            self.pial_veins[0] <= site.pial_veins <= self.pial_veins[1],
        ]
        scaled = appearance.tissue_factors[list(SCALED_CLASSES)]
        checks += [np.all(scaled[:, 1] >= self.r2star_factor[0]) and np.all(scaled[:, 1] <= self.r2star_factor[1]),
                   np.all(scaled[:, 2] >= self.chi_factor[0]) and np.all(scaled[:, 2] <= self.chi_factor[1])]
        return bool(all(checks))
