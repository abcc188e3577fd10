"""Acquisition settings of a synthetic site, and the acquisition grid they define."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import nibabel as nib
import numpy as np
from nibabel.eulerangles import euler2mat


@dataclass
class SiteParams:
    """One site's scanner and cohort settings (config ``synth.sites.<name>``; see config.yaml)."""

    name: str
    n_subjects: int = 20
    voxel_mm: tuple = (1.0, 1.0, 2.0)
    fov_mm: tuple = (176.0, 208.0, 144.0)
    orientation: str = "RAS"
    oblique_deg: float = 0.0
    b0_tesla: float = 3.0
    te_ms: float = 20.0
    snr: float = 30.0
    phase_sign: int = 1
    phase_storage: str = "radians"
    magnitude_storage: str = "float32"
    phase_kind: str = "filtered"  # raw: the wrapped phase with its background field, as many scanners export it
    magnitude_kind: str = "swi"  # gre: the plain gradient-echo magnitude instead of SWI
    draws_of: str | None = None  # another site's name: the same subjects (anatomy, lesions, noise), a twin cohort
    sim_voxel_mm: float = 1.0
    homodyne_window_fraction: float = 0.1
    background_field_ppm: float = 0.15
    bias_amplitude: float = 0.2
    cmb_count_max: int = 8
    cmb_free_fraction: float = 0.2
    cmb_diameter_mm: tuple = (2.0, 10.0)
    cmb_chi_ppm: tuple = (0.4, 1.2)
    region_weights: dict = field(default_factory=lambda: {"lobar": 0.5, "deep": 0.3, "infratentorial": 0.2})
    calcifications_max: int = 2
    medullary_veins: int = 40
    pial_veins: int = 30
    vein_radius_mm: tuple | None = None  # None: 0.4-0.7 mm medullary, 0.6-1.2 mm pial
    ventricle_expansion: float = 0.0
    swi_power: int = 4
    anatomy_contrast: str = "t1"  # template image whose intensities set partial volumes and head tissue
    pose_rotation_deg: float = 6.0
    pose_scale_sd: float = 0.04
    warp_mm: float = 2.5
    randomize: bool = False  # training mode: each subject draws its acquisition (synth.randomization)

    @classmethod
    def from_config(cls, name: str, values: dict) -> "SiteParams":
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"synth site '{name}': unknown keys {sorted(unknown)}; known: {sorted(known - {'name'})}")
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
