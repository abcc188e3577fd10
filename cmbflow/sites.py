"""Acquisition settings of a synthetic site, and the acquisition grid they define."""

from __future__ import annotations

from dataclasses import dataclass, fields

import nibabel as nib
import numpy as np
from nibabel.eulerangles import euler2mat

from cmbflow.settings import schema_defaults


@dataclass
class SiteParams:
    """One site's scanner and cohort settings (config ``synth.sites.<name>``; see config.yaml).
    Built by :meth:`from_config`; the defaults are the schema's (``definitions.site``). Two keys
    are optional rather than defaulted: ``draws_of`` and ``vein_radius_mm`` (None: not set)."""

    name: str
    n_subjects: int
    voxel_mm: tuple
    fov_mm: tuple
    orientation: str
    oblique_deg: float
    b0_tesla: float
    te_ms: float
    snr: float
    phase_sign: int
    phase_storage: str
    magnitude_storage: str
    phase_kind: str  # raw: the wrapped phase with its background field, as many scanners export it
    magnitude_kind: str  # gre: the plain gradient-echo magnitude instead of SWI
    sim_voxel_mm: float
    homodyne_window_fraction: float
    background_field_ppm: float
    bias_amplitude: float
    cmb_count_max: int
    cmb_free_fraction: float
    cmb_diameter_mm: tuple
    cmb_chi_ppm: tuple
    region_weights: dict
    calcifications_max: int
    medullary_veins: int
    pial_veins: int
    ventricle_expansion: float
    swi_power: int
    anatomy_contrast: str  # template image whose intensities set partial volumes and head tissue
    pose_rotation_deg: float
    pose_scale_sd: float
    warp_mm: float
    randomize: bool  # training mode: each subject draws its acquisition (synth.randomization)
    draws_of: str | None = None  # another site's name: the same subjects (anatomy, lesions, noise), a twin cohort
    vein_radius_mm: tuple | None = None  # None: 0.4-0.7 mm medullary, 0.6-1.2 mm pial

    @classmethod
    def from_config(cls, name: str, values: dict) -> "SiteParams":
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"synth site '{name}': unknown keys {sorted(unknown)}; known: {sorted(known - {'name'})}")
        values = {**schema_defaults("synth.sites.*"), **values}
        params = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        return cls(name=name, **params)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(round(f / v)) for f, v in zip(self.fov_mm, self.voxel_mm))

    @property
    def sim_factors(self) -> tuple[int, int, int]:
        """Sub-voxels per acquisition voxel along each axis on the global simulation grid."""
        return tuple(max(1, int(round(v / self.sim_voxel_mm))) for v in self.voxel_mm)

    def affine(self) -> np.ndarray:
        """Acquisition affine (voxel -> world mm RAS+): storage orientation, oblique tilt about
        the left-right axis, voxel size, grid centred on world (0, 0, 0)."""
        ornt = nib.orientations.axcodes2ornt(tuple(self.orientation))
        directions = np.zeros((3, 3))
        for axis, (world_axis, flip) in enumerate(ornt):
            directions[int(world_axis), axis] = flip
        tilt = euler2mat(x=np.deg2rad(self.oblique_deg))
        affine = np.eye(4)
        affine[:3, :3] = tilt @ directions @ np.diag(self.voxel_mm)
        centre_voxel = (np.array(self.shape) - 1) / 2.0
        affine[:3, 3] = -affine[:3, :3] @ centre_voxel
        return affine
