"""Tissue parameter maps (M0, R2*, chi) on the template grid, built from the atlas.

Values are for 3 T, relative to CSF for chi (ppm), from the QSM and relaxometry
literature (Deistung 2013, Langkammer 2012, Wharton & Bowtell 2010), rounded:

=====================  =====  ======  ========
tissue                  M0     R2*/s   chi/ppm
=====================  =====  ======  ========
CSF                     1.00    2       0.00
cortical grey matter    0.86   16      +0.02
white matter            0.72   21      -0.03
caudate / putamen       0.80   28      +0.06
globus pallidus         0.76   42      +0.16
thalamus                0.80   22      +0.02
brainstem               0.74   24      -0.02
cerebellar cortex       0.88   17      +0.01
soft tissue (scalp)     0.60   30       0.00
skull (bone)            0.10  300      -2.00
air cavity (sinus)      0.00    0      +9.00
=====================  =====  ======  ========

Partial volume of white matter with sulcal CSF follows the T1 intensity, so the
boundaries are smooth rather than label-hard. Outside the brain the T1 template's head is
split in three (:func:`head_classes`): bright soft tissue (scalp, muscle, fat) whose
brightness follows T1 intensity; the dark band between brain and scalp, which is bone
(diamagnetic relative to tissue, almost no MR signal); and thick dark regions below the
brain's centre (paranasal sinuses, mastoid cells), which are air: +9 ppm relative to
tissue, the source of the air-tissue field artefacts of real SWI. The air surrounding the
head is left at chi 0 (its smooth field is the site's background field), because its
full field would be dominated by the shape of the template's cropped neck.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from cmbflow.atlas import DEEP_GREY_NUCLEI, Template, VENTRICLES

CSF = (1.00, 2.0, 0.00)
GREY = (0.86, 16.0, 0.02)
WHITE = (0.72, 21.0, -0.03)
EXTRACEREBRAL = (0.60, 30.0, 0.00)
BONE = (0.10, 300.0, -2.00)
AIR = (0.00, 0.0, 9.00)
# Tissue classes of `TissueMaps.tissue_class` (3 bits: 0-7).
OUTSIDE_HEAD, CSF_CLASS, GREY_CLASS, WHITE_CLASS, NUCLEI_CLASS, SOFT_TISSUE, BONE_CLASS, AIR_CLASS = range(8)
N_TISSUE_CLASSES = 8
STRUCTURES = {
    "Caudate": (0.80, 28.0, 0.06),
    "Putamen": (0.80, 28.0, 0.06),
    "Accumbens Area": (0.80, 24.0, 0.04),
    "Pallidum": (0.76, 42.0, 0.16),
    "Thalamus": (0.80, 22.0, 0.02),
    "Ventral Diencephalon": (0.76, 26.0, 0.05),
    "Brainstem": (0.74, 24.0, -0.02),
    "Cerebellum Gray Matter": (0.88, 17.0, 0.01),
    "Cerebellum White Matter": (0.72, 21.0, -0.03),
    "Optic Chiasm": (0.72, 21.0, -0.03),
}
STRUCTURES.update({name: CSF for name in VENTRICLES})


@dataclass
class TissueMaps:
    """Template-space parameter maps, float32 arrays on the template grid (voxel = 1 mm)."""

    m0: np.ndarray
    r2star: np.ndarray
    chi: np.ndarray
    brain: np.ndarray
    tissue_class: np.ndarray  # 0 outside the head, 1 CSF, 2 grey, 3 white, 4 deep grey nuclei, 5 soft tissue, 6 bone, 7 air
    affine: np.ndarray


TISSUE_FIELDS = ("m0", "r2star", "chi", "brain", "tissue_class", "affine")


def build_tissue_maps(template: Template, contrast: str = "t1") -> TissueMaps:
    """Fill M0, R2*, chi over the template from its labels and the intensities of its
    ``contrast`` image (``t1`` or ``t2``): white-matter / CSF partial volume and the head.

    The two give two anatomy models from one template: T2 sets the CSF boundaries and the
    extracerebral tissue differently (CSF bright, fat and muscle otherwise), so a site built
    on it does not share the training sites' partial volumes and head.
    """
    if contrast not in ("t1", "t2"):
        raise ValueError(f"anatomy contrast must be 't1' or 't2', not {contrast!r}")
    shape = template.labels.shape
    params = np.zeros((3, *shape), np.float32)
    tissue = np.zeros(shape, np.uint8)
    brain = template.brain
    image = template.t1 if contrast == "t1" else template.t2

    unlabelled = brain & (template.labels == 0)
    # White matter is bright on T1 and dark on T2; CSF the opposite.
    wm_level = np.percentile(image[unlabelled], 75 if contrast == "t1" else 25)
    csf_level = np.percentile(image[np.isin(template.labels, template.label_values(VENTRICLES))], 50)
    white_fraction = np.clip((image - csf_level) / (wm_level - csf_level), 0.0, 1.0)
    for p in range(3):
        params[p][unlabelled] = white_fraction[unlabelled] * WHITE[p] + (1 - white_fraction[unlabelled]) * CSF[p]
    tissue[unlabelled] = np.where(white_fraction[unlabelled] > 0.5, 3, 1)

    labelled = brain & (template.labels > 0)
    lookup = np.zeros((3, int(template.labels.max()) + 1), np.float32)
    class_lookup = np.zeros(lookup.shape[1], np.uint8)
    for value, name in template.label_names.items():
        values = STRUCTURES.get(name, GREY)
        lookup[:, value] = values
        class_lookup[value] = 1 if values == CSF else 4 if name in DEEP_GREY_NUCLEI else 2
    for p in range(3):
        params[p][labelled] = lookup[p][template.labels[labelled]]
    tissue[labelled] = class_lookup[template.labels[labelled]]

    soft, bone, air = head_classes(image, brain, wm_level)
    head_fraction = np.clip(image / wm_level, 0.0, 1.0)
    params[0][soft] = EXTRACEREBRAL[0] * head_fraction[soft]
    params[1][soft] = EXTRACEREBRAL[1]
    for mask, values, code in ((bone, BONE, BONE_CLASS), (air, AIR, AIR_CLASS)):
        for p in range(3):
            params[p][mask] = values[p]
        tissue[mask] = code
    tissue[soft] = SOFT_TISSUE
    return TissueMaps(params[0], params[1], params[2], brain, tissue, template.affine)


def save_tissue_maps(maps: TissueMaps, contrast: str, path: str | Path) -> None:
    """Write ``maps`` (built from the template's ``contrast`` image) to ``path`` (``.npz``):
    every synthetic subject starts from them, and building them takes ~10 s."""
    if not str(path).endswith(".npz"):
        raise ValueError(f"tissue maps are written as .npz, not {path}")
    np.savez_compressed(path, contrast=np.array(contrast), **{name: getattr(maps, name) for name in TISSUE_FIELDS})


def load_tissue_maps(path: str | Path, contrast: str) -> TissueMaps:
    """The maps :func:`save_tissue_maps` wrote, refused when built from another ``contrast``."""
    with np.load(path) as stored:
        if str(stored["contrast"]) != contrast:
            raise ValueError(f"{path}: tissue maps of the {stored['contrast']} image, not {contrast}; "
                             "delete the file so that the workflow builds it again")
        return TissueMaps(**{name: stored[name] for name in TISSUE_FIELDS})


def head_classes(t1: np.ndarray, brain: np.ndarray, wm_level: float, bone_mm: float = 12.0,
                 air_erosion_vox: int = 3, air_depth_mm: float = 10.0, air_gap_mm: float = 5.0
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Soft tissue, bone and air-cavity masks of the head outside ``brain`` (1 mm grid).

    Soft tissue: non-brain voxels brighter than 0.3 x white matter on T1. Bone: darker
    non-brain voxels within ``bone_mm`` of the brain and inside the head's filled outline
    (the skull band). Air: dark regions that survive ``air_erosion_vox`` erosions (thick,
    unlike the skull band) below the brain's centre, deeper than ``air_depth_mm`` inside the
    head's outline and farther than ``air_gap_mm`` from the brain: the sinuses, nasal cavity
    and mastoid cells, enclosed by bone and tissue. Without the last two conditions the dark
    rim of the template's lower head and the bone hugging the cerebellum counted as air
    (375 mL on the T1, 451 mL on the T2 against ~80-120 mL of real cavities), and their
    +9 ppm blacked out whole temporal lobes and cerebellar hemispheres (now 120 and 111 mL).
    """
    foreground = t1 > 0.1 * wm_level
    head = ndimage.binary_fill_holes(ndimage.binary_closing(foreground | brain, iterations=3))
    outside_brain = head & ~brain
    soft = outside_brain & (t1 >= 0.3 * wm_level)
    dark = outside_brain & ~soft
    from_brain = ndimage.distance_transform_edt(~brain)
    air = ndimage.binary_erosion(dark, iterations=air_erosion_vox)
    air = ndimage.binary_dilation(air, iterations=air_erosion_vox) & dark
    below_centre = np.arange(t1.shape[2])[None, None, :] < np.argwhere(brain)[:, 2].mean()
    air &= below_centre & (ndimage.distance_transform_edt(head) > air_depth_mm) & (from_brain > air_gap_mm)
    bone = dark & (from_brain <= bone_mm) & ~air
    return soft, bone, air
