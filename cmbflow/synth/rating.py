"""How a reader would rate each simulated CMB: definite, or possible where it cannot be told apart.

Raters mark the microbleeds they can see (MARS rates them definite or possible; BOMBS certain
or uncertain) and leave alone what a susceptibility artefact hides. A simulation knows every
CMB it placed, also those inside the signal voids that air-tissue fields leave near the
sinuses and the mastoid: there the SWI around the CMB is as dark as the CMB itself, and no
reader, nor any detector, has contrast to see it by. Such a CMB is rated ``possible`` and left
out of scoring (:mod:`cmbflow.evaluation.detection`), as annotated datasets leave it out.

The rule, on the acquisition grid: a CMB is possible when the median SWI of its
surroundings (2-5 mm from its voxels, other CMBs and the outside of the brain left out) is
below :data:`VOID_FRACTION` of the brain's median SWI. It reads the image a reader would see,
never a detector's output.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

VOID_FRACTION = 1 / 3  # surroundings darker than a third of the brain's median: a signal void
SHELL_MM = (2.0, 5.0)  # the surroundings: this far from the CMB's voxels


def rate_cmbs(swi: np.ndarray, cmb_labels: np.ndarray, brain: np.ndarray, voxel_mm) -> dict[int, str]:
    """``{label: "definite" | "possible"}`` for every CMB label of ``cmb_labels`` (instance labels,
    the acquisition grid of ``swi``; ``brain``: boolean mask; ``voxel_mm``: voxel sizes)."""
    voxel_mm = np.asarray(voxel_mm, float)
    brain = brain.astype(bool)
    reference = float(np.median(swi[brain])) if brain.any() else 0.0
    reach = np.ceil(SHELL_MM[1] / voxel_mm).astype(int) + 1
    ratings = {}
    for label, box in enumerate(ndimage.find_objects(cmb_labels), start=1):
        if box is None:
            continue
        box = tuple(slice(max(s.start - r, 0), min(s.stop + r, n)) for s, r, n in zip(box, reach, cmb_labels.shape))
        labels = cmb_labels[box]
        distance = ndimage.distance_transform_edt(labels != label, sampling=voxel_mm)
        shell = (distance > SHELL_MM[0]) & (distance <= SHELL_MM[1]) & (labels == 0) & brain[box]
        surroundings = float(np.median(swi[box][shell])) if shell.any() else reference
        ratings[label] = "possible" if surroundings < VOID_FRACTION * reference else "definite"
    return ratings
