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
extracerebral tissue    0.60   30       0.00
=====================  =====  ======  ========

Partial volume of white matter with sulcal CSF follows the T1 intensity, so the
boundaries are smooth rather than label-hard. Outside the brain the T1 template's head
(scalp, muscle) gives extracerebral tissue whose brightness follows T1 intensity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cmbflow.atlas import DEEP_GREY_NUCLEI, Template, VENTRICLES

CSF = (1.00, 2.0, 0.00)
GREY = (0.86, 16.0, 0.02)
WHITE = (0.72, 21.0, -0.03)
EXTRACEREBRAL = (0.60, 30.0, 0.00)
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
    tissue_class: np.ndarray  # 0 outside, 1 CSF, 2 grey, 3 white, 4 deep grey nuclei
    affine: np.ndarray


def build_tissue_maps(template: Template) -> TissueMaps:
    """Fill M0, R2*, chi over the template from its labels and T1 intensities."""
    shape = template.labels.shape
    params = np.zeros((3, *shape), np.float32)
    tissue = np.zeros(shape, np.uint8)
    brain = template.brain

    unlabelled = brain & (template.labels == 0)
    wm_level = np.percentile(template.t1[unlabelled], 75)
    csf_level = np.percentile(template.t1[np.isin(template.labels, template.label_values(VENTRICLES))], 50)
    white_fraction = np.clip((template.t1 - csf_level) / (wm_level - csf_level), 0.0, 1.0)
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

    head = ~brain & (template.t1 > 0.05 * wm_level)
    head_fraction = np.clip(template.t1 / wm_level, 0.0, 1.0)
    params[0][head] = EXTRACEREBRAL[0] * head_fraction[head]
    params[1][head] = EXTRACEREBRAL[1]
    return TissueMaps(params[0], params[1], params[2], brain, tissue, template.affine)
