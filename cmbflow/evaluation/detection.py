"""Detection scoring: which candidates hit which CMB.

Two hit rules (config ``evaluation.hit_rule``):

* ``mask`` (default): the candidate's centre (voxel of the original image, rounded) lies in
  the CMB's instance mask dilated by ``dilation_voxels`` (one).
* ``distance``: the candidate's centre (world mm) lies within ``max(radius_mm, r_min_mm)``
  of the CMB's marker; the nearest such CMB is hit. Without a mask or a marker radius the
  CMB's radius is that of a ball of its mask's volume.

Candidates are taken best first; the first hit of a CMB is a true positive, later candidates
on an already-found CMB are ``duplicate`` (neither true nor false positive, as in the LUNA16
FROC), the rest are false positives. A CMB its markers rate ``possible`` (MARS; BOMBS:
uncertain) is left out of scoring: it is never missed, and a candidate on it is ``possible``,
neither true nor false positive (LUNA16's excluded findings, the WMH challenge's ignored label).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pandas as pd
from scipy import ndimage

from cmbflow.io.annotations import instance_labels, read_markers
from cmbflow.io.coords import voxel_to_world, world_to_voxel
from cmbflow.io.nifti import load_volume
from cmbflow.settings import FromConfig

OUTCOMES = ("tp", "fp", "duplicate", "possible")


@dataclass(frozen=True)
class HitRule(FromConfig):
    """When a candidate hits a CMB (config ``evaluation.hit_rule``)."""

    section: ClassVar[str] = "evaluation.hit_rule"

    kind: str  # mask | distance
    dilation_voxels: int  # mask rule: instance masks grown by this many voxels
    r_min_mm: float  # distance rule: smallest hit radius around a marker


@dataclass
class SubjectTruth:
    """The CMBs of one subject: ``labels`` (instance mask on the original grid, or None) and
    ``lesions`` (one row per CMB: ``lesion`` id, ``x, y, z`` world mm RAS+ centre, ``radius_mm``,
    ``rating``: definite, or possible for those left out of scoring)."""

    labels: np.ndarray | None
    affine: np.ndarray | None
    lesions: pd.DataFrame
    _dilated: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def dilated(self, dilation_voxels: int) -> np.ndarray:
        """``labels`` grown by :func:`dilated_lesions`, computed once per width (every filter
        and localization scored against the subject reads it)."""
        if dilation_voxels not in self._dilated:
            self._dilated[dilation_voxels] = dilated_lesions(np.asarray(self.labels), dilation_voxels)
        return self._dilated[dilation_voxels]


def _ball_radius_mm(n_voxels: np.ndarray, voxel_volume: float) -> np.ndarray:
    return np.cbrt(3 * n_voxels * voxel_volume / (4 * np.pi))


def load_truth(mask: str | None, markers: str | None = None) -> SubjectTruth:
    """CMBs of one subject from its instance ``mask`` (CMB centres: mask centroids) or, with no
    mask, its ``markers`` table. Marker radii are used where a mask has none of its own."""
    if mask:
        data, affine = load_volume(mask)  # the user's mask: any name load_volume reads
        labels = instance_labels(data)
        ids = np.unique(labels[labels > 0])
        centres = np.array(ndimage.center_of_mass(labels > 0, labels, ids)).reshape(-1, 3)
        sizes = ndimage.sum_labels(labels > 0, labels, ids)
        radius = _ball_radius_mm(np.asarray(sizes, float), float(abs(np.linalg.det(affine[:3, :3]))))
        world = voxel_to_world(affine, centres)
        lesions = pd.DataFrame({"lesion": ids.astype(int), "x": world[:, 0], "y": world[:, 1], "z": world[:, 2],
                                "radius_mm": radius, "rating": "definite"})
        if markers:
            possible = _possible_labels(read_markers(markers), labels, affine)
            lesions.loc[lesions["lesion"].isin(possible), "rating"] = "possible"
        return SubjectTruth(labels, affine, lesions)
    if not markers:
        raise ValueError("a subject's CMBs need a mask or a markers table")
    table = read_markers(markers)
    radius = table["radius_mm"].to_numpy(float) if "radius_mm" in table else np.full(len(table), np.nan)
    lesions = pd.DataFrame({"lesion": np.arange(1, len(table) + 1), "x": table["x"].to_numpy(float),
                            "y": table["y"].to_numpy(float), "z": table["z"].to_numpy(float), "radius_mm": radius,
                            "rating": table["rating"].to_numpy() if "rating" in table else "definite"})
    return SubjectTruth(None, None, lesions)


def _possible_labels(markers: pd.DataFrame, labels: np.ndarray, affine: np.ndarray) -> set[int]:
    """Mask labels of the markers rated possible: the label at (or next to) each marker's voxel."""
    possible = markers[markers["rating"] == "possible"] if "rating" in markers else markers.iloc[:0]
    if possible.empty:
        return set()
    grown = dilated_lesions(labels, 1)
    ijk = np.rint(world_to_voxel(affine, possible[["x", "y", "z"]].to_numpy(float))).astype(int).reshape(-1, 3)
    inside = np.all((ijk >= 0) & (ijk < np.array(labels.shape)), axis=1)
    return {int(label) for label in grown[tuple(ijk[inside].T)] if label > 0}


def dilated_lesions(labels: np.ndarray, dilation_voxels: int = 1) -> np.ndarray:
    """Instance labels ``(I, J, K)`` grown by ``dilation_voxels`` (a 3x3x3 cube per step);
    where two grown CMBs meet, the higher label wins (rare: CMBs are millimetres apart)."""
    if dilation_voxels <= 0:
        return labels
    return ndimage.grey_dilation(labels, size=(2 * dilation_voxels + 1,) * 3)


def _hits_by_mask(table: pd.DataFrame, grown: np.ndarray) -> np.ndarray:
    voxels = np.rint(table[["i", "j", "k"]].to_numpy(float)).astype(int).reshape(-1, 3)
    inside = np.all((voxels >= 0) & (voxels < np.array(grown.shape)), axis=1)
    lesion = np.zeros(len(table), int)
    lesion[inside] = grown[tuple(voxels[inside].T)]
    return lesion


def _hits_by_distance(table: pd.DataFrame, lesions: pd.DataFrame, r_min_mm: float) -> np.ndarray:
    lesion = np.zeros(len(table), int)
    if lesions.empty or table.empty:
        return lesion
    points = table[["x", "y", "z"]].to_numpy(float)
    centres = lesions[["x", "y", "z"]].to_numpy(float)
    distance = np.linalg.norm(points[:, None, :] - centres[None], axis=2)
    reach = np.fmax(lesions["radius_mm"].to_numpy(float), r_min_mm)  # fmax: a NaN radius gives r_min
    distance[distance > reach[None]] = np.inf
    nearest = distance.argmin(axis=1)
    found = np.isfinite(distance[np.arange(len(table)), nearest])
    lesion[found] = lesions["lesion"].to_numpy(int)[nearest[found]]
    return lesion


def match_candidates(candidates: pd.DataFrame, truth: SubjectTruth | np.ndarray, rule: HitRule) -> pd.DataFrame:
    """Candidates of one subject (``i, j, k`` voxel of the original image and ``x, y, z`` world
    mm, ``score``), best first, with ``lesion`` (id of the CMB hit, 0 none) and ``outcome``
    (:data:`OUTCOMES`) added. ``truth`` may be a bare instance-label array (mask rule)."""
    if isinstance(truth, np.ndarray):
        truth = SubjectTruth(truth, None, pd.DataFrame(columns=["lesion", "x", "y", "z", "radius_mm"]))
    table = candidates.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)
    if rule.kind == "mask":
        if truth.labels is None:
            raise ValueError("the mask hit rule needs CMB masks; set evaluation.hit_rule.kind: distance for markers only")
        lesion = _hits_by_mask(table, truth.dilated(rule.dilation_voxels))
    elif rule.kind == "distance":
        lesion = _hits_by_distance(table, truth.lesions, rule.r_min_mm)
    else:
        raise ValueError(f"unknown hit rule {rule.kind!r}: mask or distance")
    first = ~pd.Series(lesion).duplicated().to_numpy()
    table["lesion"] = lesion
    table["outcome"] = np.where(lesion == 0, "fp", np.where(first, "tp", "duplicate"))
    if "rating" in truth.lesions:
        possible = truth.lesions.loc[truth.lesions["rating"] == "possible", "lesion"].to_numpy(int)
        table.loc[np.isin(lesion, possible) & (lesion > 0), "outcome"] = "possible"
    return table


def definite_lesions(lesions: pd.DataFrame) -> pd.DataFrame:
    """The CMBs that are scored: every row of ``lesions`` but those rated possible (a table
    without ratings: all of them)."""
    return lesions[lesions["rating"] != "possible"] if "rating" in lesions else lesions


def possible_as_definite(matched: pd.DataFrame) -> pd.DataFrame:
    """``matched`` (candidates of one or more subjects, best first per subject) scored as if every
    possible CMB were definite: its first hit a true positive, later ones duplicates."""
    possible = matched["outcome"] == "possible"
    if not possible.any():
        return matched
    keys = matched["subject"].astype(str) + "/" + matched["lesion"].astype(str) if "subject" in matched else matched["lesion"]
    first = ~keys.duplicated()
    return matched.assign(outcome=np.where(possible, np.where(first, "tp", "duplicate"), matched["outcome"]))
