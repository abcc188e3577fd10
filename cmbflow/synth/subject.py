"""Simulate one subject's SWI acquisition (see :mod:`cmbflow.synth.physics` for units).

Two scales, because a whole head on a grid fine enough for millimetre lesions does not fit
a CPU budget:

* **global grid**: the acquisition grid split into sub-voxels of about ``sim_voxel_mm``
  (1 mm): tissue, veins, field of all sources by k-space dipole convolution, signal
  averaged into acquisition voxels;
* **lesion patches**: around each CMB and calcification a patch of acquisition voxels is
  split into sub-voxels of 0.25-0.5 mm; the field of the foci in the patch is computed
  there by the dipole kernel, added to the interpolated tissue field, and the complex
  signal averaged into the patch's acquisition voxels replaces the global result. The
  blooming of a CMB thus comes from intravoxel dephasing, not from drawing a larger sphere.

The field of a focus is not carried into the patches of other foci; foci are kept at least
12 mm apart (plus their radii) so that this far field (< 4 % of the surface field) is small.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage

from cmbflow.atlas import DEEP, REGION_NAMES
from cmbflow.io.coords import direction_cosines, grid_world_coordinates, world_to_voxel
from cmbflow.synth import physics
from cmbflow.synth.randomize import Appearance
from cmbflow.synth.rating import rate_cmbs
from cmbflow.sites import SiteParams
from cmbflow.synth.sources import Focus, Vein, random_calcification, random_cmb, random_walk
from cmbflow.synth.tissue import AIR_CLASS, BONE_CLASS, CSF_CLASS, NUCLEI_CLASS, WHITE, TissueMaps
from cmbflow.synth.warp import SubjectWarp

log = logging.getLogger(__name__)

REGION_CODES = {name: code for code, name in REGION_NAMES.items()}
FOCUS_MIN_GAP_MM = 12.0
# Tissue classes of `TissueMaps.tissue_class` where a lesion may sit (grey, white, deep nuclei).
PARENCHYMA = (2, 3, 4)


@dataclass
class Geometry:
    """A grid: ``affine`` maps voxel index -> world mm RAS+; ``sim_factors`` sub-voxels per axis."""

    affine: np.ndarray
    shape: tuple
    sim_factors: tuple

    @property
    def voxel(self) -> np.ndarray:
        return np.sqrt((self.affine[:3, :3] ** 2).sum(0))

    @property
    def sim_spacing(self) -> np.ndarray:
        return self.voxel / np.array(self.sim_factors)

    @property
    def b0_axes(self) -> np.ndarray:
        """Unit B0 (world +z, the scanner bore) expressed in the grid's array axes."""
        return direction_cosines(self.affine).T @ np.array([0.0, 0.0, 1.0])

    def sim_index(self, grid_mm: np.ndarray) -> np.ndarray:
        """Grid mm (acquisition index x voxel) -> continuous global-simulation-grid index."""
        return (grid_mm / self.voxel + 0.5) * np.array(self.sim_factors) - 0.5

    def world(self, grid_mm: np.ndarray) -> np.ndarray:
        """Grid mm -> world mm RAS+."""
        ijk = np.atleast_2d(grid_mm) / self.voxel
        return ijk @ self.affine[:3, :3].T + self.affine[:3, 3]


@dataclass
class SyntheticSubject:
    """A simulated acquisition on ``affine`` (voxel -> world mm RAS+); arrays are 3-D.

    ``swi`` SWI magnitude, ``phase`` high-pass phase in radians (site sign applied),
    ``magnitude`` GRE magnitude, ``cmb_labels`` instance labels, ``regions`` true MARS map,
    ``brain_mask``; ``markers`` / ``mimics`` tables in world mm RAS+.
    """

    affine: np.ndarray
    swi: np.ndarray
    phase: np.ndarray
    magnitude: np.ndarray
    cmb_labels: np.ndarray
    brain_mask: np.ndarray
    regions: np.ndarray
    markers: pd.DataFrame
    mimics: pd.DataFrame


class Simulator:
    """Simulates subjects from template tissue maps and a MARS region atlas (template grid)."""

    def __init__(self, tissue: TissueMaps, regions: np.ndarray, workers: int = 1):
        self.tissue = tissue
        self.workers = workers  # threads for the FFTs
        # One uint8 code per template voxel holds the label-like maps, sampled in one pass:
        # bits 0-2 tissue class, bits 3-4 MARS region, bit 5 brain.
        self.codes = (tissue.tissue_class | (regions.astype(np.uint8) << 3) | (tissue.brain.astype(np.uint8) << 5)).astype(np.uint8)
        self.params = np.stack([tissue.m0, tissue.r2star, tissue.chi])
        centre_ijk = np.argwhere(tissue.brain).mean(0)
        self.template_centre = (tissue.affine[:3, :3] @ centre_ijk + tissue.affine[:3, 3])
        # Centre of the ventricles: CSF within 30 mm of the deep grey nuclei (not sulcal CSF).
        nuclei_ijk = np.argwhere(tissue.tissue_class == NUCLEI_CLASS).mean(0)
        csf_ijk = np.argwhere(tissue.tissue_class == CSF_CLASS)
        near = csf_ijk[np.linalg.norm((csf_ijk - nuclei_ijk) * np.sqrt((tissue.affine[:3, :3] ** 2).sum(0)), axis=1) < 30]
        ventricles_ijk = near.mean(0) if len(near) else nuclei_ijk
        self.ventricle_centre = tissue.affine[:3, :3] @ ventricles_ijk + tissue.affine[:3, 3]

    # -- sampling the warped template ---------------------------------------------------
    def _template_index(self, world: np.ndarray, warp: SubjectWarp) -> np.ndarray:
        shape = world.shape[:-1]
        ijk = world_to_voxel(self.tissue.affine, warp.to_template(world.reshape(-1, 3)))
        return np.moveaxis(ijk.astype(np.float32).reshape(*shape, 3), -1, 0)

    def _sample_codes(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        codes = ndimage.map_coordinates(self.codes, index, order=0, mode="constant", cval=0)
        return codes & 7, (codes >> 3) & 3, (codes >> 5) & 1

    # -- the simulation -----------------------------------------------------------------
    def simulate(self, site: SiteParams, rng: np.random.Generator, warp: SubjectWarp | None = None,
                 geometry: Geometry | None = None, with_sources: bool = True, with_noise: bool = True,
                 appearance: Appearance | None = None) -> SyntheticSubject:
        """Simulate one acquisition of ``site`` (or of ``geometry`` when given, e.g. the template grid).

        ``appearance``: the subject's tissue factors, head tissue and atrophy (randomized
        training mode, :mod:`cmbflow.synth.randomize`); default: the site's fixed appearance.
        """
        appearance = appearance or Appearance.of_site(site)
        geometry = geometry or Geometry(site.affine(), site.shape, site.sim_factors)
        if warp is None:
            warp = SubjectWarp.random(rng, self.template_centre, rotation_deg=site.pose_rotation_deg,
                                      scale_sd=site.pose_scale_sd, warp_mm=site.warp_mm)
            warp.expansion, warp.expansion_centre = appearance.ventricle_expansion, self.ventricle_centre
        f = geometry.sim_factors
        world = grid_world_coordinates(geometry.affine, geometry.shape, f)
        index = self._template_index(world, warp)
        m0, r2star, chi = (ndimage.map_coordinates(p, index, order=1, mode="constant", cval=0.0) for p in self.params)
        tissue_class, region, brain = self._sample_codes(index)
        del index
        self._apply_appearance(appearance, tissue_class, m0, r2star, chi)
        # Individual variation of tissue properties.
        chi *= np.float32(rng.normal(1.0, 0.1))
        r2star *= np.float32(rng.normal(1.0, 0.05))

        foci: list[Focus] = []
        veins: list[Vein] = []
        if with_sources:
            veins = self._place_veins(site, rng, geometry, tissue_class, region, brain)
            for vein in veins:
                self._rasterize_vein(vein, geometry, m0, r2star, chi)
            foci = self._place_foci(site, rng, geometry, tissue_class, region, appearance.r2star_field_factor)

        background = self._background_field(site, rng, world) if with_noise else 0.0
        del world
        tissue_field = physics.field_from_susceptibility(chi, geometry.sim_spacing, geometry.b0_axes, workers=self.workers) + background
        phase_offset = np.exp(1j * rng.uniform(-np.pi, np.pi)).astype(np.complex64) if with_noise else np.complex64(1)

        total_field = tissue_field
        m0_foci, r2_foci = m0, r2star
        if foci:
            chi_foci = np.zeros_like(chi)
            m0_foci, r2_foci = m0.copy(), r2star.copy()
            for focus in foci:
                self._rasterize_focus(focus, geometry, chi_foci, m0_foci, r2_foci)
            total_field = tissue_field + physics.field_from_susceptibility(chi_foci, geometry.sim_spacing, geometry.b0_axes, workers=self.workers)
        signal = physics.average_blocks(
            physics.gre_signal(m0_foci, r2_foci, total_field, site.te_ms, site.b0_tesla) * phase_offset, f
        )
        del total_field, chi

        cmb_labels = np.zeros(geometry.shape, np.int16)
        for focus in foci:
            self._refine_patch(focus, foci, site, geometry, signal, m0, r2star, tissue_field, phase_offset, cmb_labels)

        acq_world = grid_world_coordinates(geometry.affine, geometry.shape)
        _, regions, brain_mask = self._sample_codes(self._template_index(acq_world, warp))
        if with_noise:
            signal *= self._receive_bias(site, rng, acq_world)
            reference = WHITE[0] * np.exp(-WHITE[1] * site.te_ms * 1e-3)
            sigma = reference / site.snr
            signal += (rng.normal(0, sigma, signal.shape) + 1j * rng.normal(0, sigma, signal.shape)).astype(np.complex64)
        del acq_world

        magnitude = np.abs(signal).astype(np.float32)
        phase = physics.homodyne_phase(signal, site.homodyne_window_fraction, workers=self.workers)
        swi = physics.swi_from(magnitude, phase, power=appearance.swi_power)
        markers = self._markers_table(foci, geometry, cmb_labels)
        ratings = rate_cmbs(swi, cmb_labels, brain_mask, geometry.voxel)  # on the SWI a reader sees, whatever is exported
        markers["rating"] = [ratings.get(int(label), "definite") for label in markers["label"]]
        if site.magnitude_kind == "gre":
            swi = magnitude  # the site exports its GRE magnitude; preprocessing forms the SWI
        if site.phase_kind == "raw":
            phase = np.angle(signal).astype(np.float32)  # background field, offset and wraps kept
        return SyntheticSubject(
            affine=geometry.affine, swi=swi, phase=(site.phase_sign * phase).astype(np.float32), magnitude=magnitude,
            cmb_labels=cmb_labels, brain_mask=brain_mask.astype(np.uint8), regions=regions.astype(np.uint8),
            markers=markers, mimics=self._mimics_table(foci, veins, geometry),
        )

    @staticmethod
    def _apply_appearance(appearance: Appearance, tissue_class, m0, r2star, chi) -> None:
        """Per-class factors on M0, R2*, chi (in place), the skull band's and air cavities' values,
        and R2* scaled with the field strength."""
        factors = appearance.tissue_factors[tissue_class]
        m0 *= factors[..., 0]
        r2star *= factors[..., 1] * np.float32(appearance.r2star_field_factor)
        chi *= factors[..., 2]
        del factors
        for code, m0_value, chi_value in ((BONE_CLASS, appearance.bone_m0, appearance.bone_chi_ppm),
                                          (AIR_CLASS, None, appearance.air_chi_ppm)):
            if m0_value is None and chi_value is None:
                continue
            where = tissue_class == code
            if m0_value is not None:
                m0[where] = m0_value
            if chi_value is not None:
                chi[where] = chi_value

    # -- sources --------------------------------------------------------------------------
    @staticmethod
    def _grid_mm_of(flat_index: int, shape, geometry: Geometry) -> np.ndarray:
        n = np.array(np.unravel_index(flat_index, shape), float)
        return ((n + 0.5) / np.array(geometry.sim_factors) - 0.5) * geometry.voxel

    @staticmethod
    def _lookup(array: np.ndarray, geometry: Geometry, grid_mm: np.ndarray) -> np.ndarray:
        idx = np.rint(geometry.sim_index(np.atleast_2d(grid_mm))).astype(int)
        inside = np.all((idx >= 0) & (idx < np.array(array.shape)), axis=1)
        out = np.zeros(len(idx), array.dtype)
        out[inside] = array[tuple(idx[inside].T)]
        return out

    def _place_foci(self, site, rng, geometry, tissue_class, region, r2star_factor: float = 1.0) -> list[Focus]:
        parenchyma = np.isin(tissue_class, PARENCHYMA)
        if rng.uniform() < site.cmb_free_fraction:
            n_cmb = 0
        else:
            n_cmb = int(rng.integers(1, site.cmb_count_max + 1))
        names = list(site.region_weights)
        weights = np.array([site.region_weights[n] for n in names], float)
        candidates = {}
        foci: list[Focus] = []

        def try_place(make, pool_name, target_region):
            """Place one focus from ``make(centre)`` in ``target_region`` (None: deep grey nuclei)."""
            if pool_name not in candidates:
                mask = parenchyma & (region == target_region) if target_region is not None else (tissue_class == 4)
                candidates[pool_name] = np.flatnonzero(mask)
            pool = candidates[pool_name]
            if len(pool) == 0:
                return
            for _ in range(60):
                centre = self._grid_mm_of(int(rng.choice(pool)), region.shape, geometry)
                centre += rng.uniform(-0.5, 0.5, 3) * geometry.sim_spacing
                focus = make(centre)
                r = focus.diameter / 2
                # the centre too: jittered off its voxel it could sit in a sulcus (region "outside"),
                # a CMB no reader would mark and anatomical filtering rightly removes
                probes = centre + np.vstack([np.zeros((1, 3)), np.eye(3), -np.eye(3)]) * r
                probe_region = self._lookup(region, geometry, probes)
                if target_region is not None and not np.all(probe_region == target_region):
                    continue
                if np.any(self._lookup(tissue_class, geometry, probes) == 1):  # not into CSF
                    continue
                if any(np.linalg.norm(o.centre - centre) < r + o.diameter / 2 + FOCUS_MIN_GAP_MM for o in foci):
                    continue
                foci.append(focus)
                return

        for _ in range(n_cmb):
            name = names[rng.choice(len(names), p=weights / weights.sum())]
            code = REGION_CODES[name]
            try_place(lambda c, code=code: random_cmb(rng, c, site.cmb_diameter_mm, code, site.cmb_chi_ppm, r2star_factor),
                      name, code)
        for _ in range(int(rng.integers(0, site.calcifications_max + 1))):
            try_place(lambda c: random_calcification(rng, c, DEEP), "deep_nuclei", None)
        for focus in foci:
            focus.region = int(self._lookup(region, geometry, focus.centre)[0])
        return foci

    def _place_veins(self, site, rng, geometry, tissue_class, region, brain) -> list[Vein]:
        veins: list[Vein] = []
        spacing = geometry.sim_spacing
        deep_white = np.flatnonzero((tissue_class == 3) & (region == DEEP))
        shell = brain.astype(bool) & ~ndimage.binary_erosion(brain.astype(bool), iterations=3)
        pial_start = np.flatnonzero(shell & (tissue_class == 2))

        def allowed(mask):
            return lambda pts: self._lookup(mask, geometry, pts).astype(bool)

        white = tissue_class == 3
        medullary_radius = site.vein_radius_mm or (0.4, 0.7)
        pial_radius = site.vein_radius_mm or (0.6, 1.2)
        for kind, pool, count, inside, length, radius in (
            ("medullary_vein", deep_white, site.medullary_veins, allowed(white), (10, 25), medullary_radius),
            ("pial_vein", pial_start, site.pial_veins, allowed(shell), (15, 40), pial_radius),
        ):
            if len(pool) == 0:
                continue
            for _ in range(count):
                start = self._grid_mm_of(int(rng.choice(pool)), tissue_class.shape, geometry)
                path = random_walk(rng, start, inside, spacing, rng.uniform(*length))
                if len(path) < 4:
                    continue
                veins.append(Vein(kind, path, float(rng.uniform(*radius)), chi=float(rng.uniform(0.3, 0.5)),
                                  region=int(self._lookup(region, geometry, path[len(path) // 2])[0])))
        return veins

    @staticmethod
    def _bbox(geometry: Geometry, lo_mm, hi_mm, shape):
        lo = np.maximum(np.floor(geometry.sim_index(lo_mm)).astype(int), 0)
        hi = np.minimum(np.ceil(geometry.sim_index(hi_mm)).astype(int) + 1, shape)
        if np.any(hi <= lo):
            return None
        axes = [((np.arange(a, b) + 0.5) / f - 0.5) * v for a, b, f, v in zip(lo, hi, geometry.sim_factors, geometry.voxel)]
        points = np.stack(np.meshgrid(*axes, indexing="ij"), -1)
        return tuple(slice(a, b) for a, b in zip(lo, hi)), points

    def _rasterize_vein(self, vein: Vein, geometry, m0, r2star, chi) -> None:
        margin = vein.radius + 1.5
        box = self._bbox(geometry, vein.points.min(0) - margin, vein.points.max(0) + margin, m0.shape)
        if box is None:
            return
        sl, points = box
        h = float(geometry.sim_spacing.mean())
        frac = np.clip((vein.radius - vein.distance(points.reshape(-1, 3))) / h + 0.5, 0, 1).reshape(points.shape[:-1])
        frac = frac.astype(np.float32)
        for array, value in ((m0, vein.m0), (r2star, vein.r2star), (chi, vein.chi)):
            array[sl] = (1 - frac) * array[sl] + frac * value

    def _rasterize_focus(self, focus: Focus, geometry, chi, m0, r2star) -> None:
        r = focus.semi_axes.max() + 1.5
        box = self._bbox(geometry, focus.centre - r, focus.centre + r, chi.shape)
        if box is None:
            return
        sl, points = box
        occ = focus.occupancy(points, float(geometry.sim_spacing.mean()))
        chi[sl] += occ * focus.chi
        m0[sl] = (1 - occ) * m0[sl] + occ * focus.m0
        r2star[sl] = (1 - occ) * r2star[sl] + occ * focus.r2star

    def _refine_patch(self, focus: Focus, foci, site, geometry, signal, m0, r2star, tissue_field, phase_offset, cmb_labels) -> None:
        """Recompute the acquisition voxels around ``focus`` from a sub-voxel simulation."""
        d = focus.diameter
        reach = 1.25 * d + 2.0
        voxel = geometry.voxel
        centre_ijk = focus.centre / voxel
        lo = np.maximum(np.floor(centre_ijk - reach / voxel).astype(int), 0)
        hi = np.minimum(np.ceil(centre_ijk + reach / voxel).astype(int) + 1, np.array(geometry.shape))
        if np.any(hi <= lo):
            return
        target = float(np.clip(d / 8, 0.25, 0.5))
        ff = tuple(int(np.ceil(v / target)) for v in voxel)
        axes = [(a + (np.arange((b - a) * k) + 0.5) / k - 0.5) * v for a, b, k, v in zip(lo, hi, ff, voxel)]
        points = np.stack(np.meshgrid(*axes, indexing="ij"), -1).astype(np.float32)
        sim_idx = np.moveaxis(geometry.sim_index(points.reshape(-1, 3)).reshape(points.shape), -1, 0)
        m0_f, r2_f, field_f = (ndimage.map_coordinates(a, sim_idx, order=1, mode="nearest") for a in (m0, r2star, tissue_field))
        chi_f = np.zeros_like(m0_f)
        fine_spacing = voxel / np.array(ff)
        own = None
        for other in foci:
            if np.linalg.norm(other.centre - focus.centre) > reach + other.semi_axes.max():
                continue
            occ = other.occupancy(points, float(fine_spacing.mean()))
            chi_f += occ * other.chi
            m0_f = (1 - occ) * m0_f + occ * other.m0
            r2_f = (1 - occ) * r2_f + occ * other.r2star
            if other is focus:
                own = occ
        field_f += physics.field_from_susceptibility(chi_f, fine_spacing, geometry.b0_axes, pad_fraction=0.5, workers=1)
        fine_signal = physics.gre_signal(m0_f, r2_f, field_f, site.te_ms, site.b0_tesla) * phase_offset
        block = tuple(slice(a, b) for a, b in zip(lo, hi))
        signal[block] = physics.average_blocks(fine_signal, ff)
        if focus.kind == "cmb" and own is not None:
            label = int(cmb_labels.max()) + 1
            inside = physics.average_blocks(own, ff) >= 0.5
            centre_voxel = tuple(np.clip(np.rint(centre_ijk).astype(int), 0, np.array(geometry.shape) - 1))
            region = cmb_labels[block]
            region[inside & (region == 0)] = label
            cmb_labels[centre_voxel] = label
            focus.label = label

    @staticmethod
    def _smooth_field(rng, world: np.ndarray, wavelengths=(150.0, 300.0), n_terms: int = 3) -> np.ndarray:
        """A smooth random field of unit scale over world mm points ``(..., 3)``."""
        out = np.zeros(world.shape[:-1], np.float32)
        for _ in range(n_terms):
            direction = rng.normal(size=3)
            direction /= np.linalg.norm(direction)
            k = (2 * np.pi / rng.uniform(*wavelengths) * direction).astype(np.float32)
            out += np.sin(world @ k + np.float32(rng.uniform(0, 2 * np.pi)))
        return out / np.sqrt(n_terms)

    def _background_field(self, site, rng, world) -> np.ndarray:
        """Smooth background field (ppm): air-tissue interfaces and shim residue."""
        return (site.background_field_ppm * self._smooth_field(rng, world)).astype(np.float32)

    def _receive_bias(self, site, rng, world) -> np.ndarray:
        """Smooth multiplicative receive-coil sensitivity around 1."""
        return np.exp(site.bias_amplitude * self._smooth_field(rng, world)).astype(np.float32)

    # -- tables -----------------------------------------------------------------------------
    @staticmethod
    def _markers_table(foci, geometry, cmb_labels) -> pd.DataFrame:
        rows = []
        for focus in foci:
            if focus.kind != "cmb" or not hasattr(focus, "label"):
                continue
            x, y, z = geometry.world(focus.centre)[0]
            rows.append({"x": x, "y": y, "z": z, "radius_mm": focus.diameter / 2, "region": REGION_NAMES[focus.region],
                         "label": focus.label, "chi_ppm": focus.chi, "n_voxels": int((cmb_labels == focus.label).sum())})
        return pd.DataFrame(rows, columns=["x", "y", "z", "radius_mm", "region", "label", "chi_ppm", "n_voxels"])

    @staticmethod
    def _mimics_table(foci, veins, geometry) -> pd.DataFrame:
        rows = []
        for focus in foci:
            if focus.kind == "cmb":
                continue
            x, y, z = geometry.world(focus.centre)[0]
            rows.append({"kind": focus.kind, "id": len(rows), "x": x, "y": y, "z": z, "diameter_mm": focus.diameter,
                         "region": REGION_NAMES[focus.region], "chi_ppm": focus.chi})
        for number, vein in enumerate(veins):
            for point in vein.points[::3]:
                x, y, z = geometry.world(point)[0]
                rows.append({"kind": vein.kind, "id": number, "x": x, "y": y, "z": z, "diameter_mm": 2 * vein.radius,
                             "region": REGION_NAMES[vein.region], "chi_ppm": vein.chi})
        return pd.DataFrame(rows, columns=["kind", "id", "x", "y", "z", "diameter_mm", "region", "chi_ppm"])
