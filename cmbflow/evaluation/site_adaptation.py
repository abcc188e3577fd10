"""Adapting a detector's operating point to a site, without labels (rule ``adapt_operating_point``,
config ``detector.operating_point.site_adaptation``).

On a site it never saw, the network's scores sit lower (or higher) as a whole: for the lesions and
for the dark spots that are not lesions alike. At the home threshold the census then missed 1.2-1.7
CMBs a subject on the unseen site with no false positive at all (docs/results.md). The candidates
ranked deep in each subject's list (40th to 80th by default) are nearly all background, so their
score level, measured the same way on the validation subjects and on the site's own subjects, says
how far the site's scores moved. The threshold moves by the same amount in logit
(:func:`adapt_threshold`). It reads no annotation: it uses the site's candidates only, so it works
on unlabelled data, and a scored subject's labels never reach it.

It reads candidate tables and brain masks only: no network library is loaded (each would add
seconds to every such job).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit, logit

from cmbflow.io.coords import world_to_voxel
from cmbflow.io.jsonfile import write_json_atomic
from cmbflow.io.nifti import load_volume

log = logging.getLogger(__name__)

# Candidates ranked 40th to 80th of a subject (best first) measure its background: a subject with
# more than 40 CMBs is rare outside severe amyloid angiopathy, and the search keeps up to 200.
BACKGROUND_RANKS = (40, 80)


def background_score(scores_by_subject: list[np.ndarray], ranks=BACKGROUND_RANKS, floor: float = 0.0) -> float:
    """The score level of a site's background (no annotation needed): per subject, the median
    score of its candidates ranked ``ranks[0]`` to ``ranks[1]`` (1-based, best first; ranks it
    lacks count as ``floor``, the search's ``score_threshold``), then the median over subjects.
    ``floor`` without subjects."""
    low, high = int(ranks[0]), int(ranks[1])
    levels = []
    for scores in scores_by_subject:
        ordered = np.sort(np.asarray(scores, float))[::-1]
        ordered = np.concatenate([ordered, np.full(max(0, high - len(ordered)), floor)])
        levels.append(float(np.median(ordered[low - 1:high])))
    return float(np.median(levels)) if levels else float(floor)


def adapt_threshold(threshold: float, home_level: float, site_level: float, max_logit_shift: float) -> tuple[float, float]:
    """``(threshold, shift)``: ``threshold`` moved in logit by ``logit(site_level) -
    logit(home_level)`` (the site's background against the validation subjects'), the shift
    clipped to ``max_logit_shift`` either way (a site with almost no candidates would otherwise
    send the threshold to the search's floor)."""
    site, home, point = np.clip([site_level, home_level, threshold], 1e-6, 1 - 1e-6)  # finite logits
    shift = float(np.clip(logit(site) - logit(home), -max_logit_shift, max_logit_shift))
    return float(expit(logit(point) + shift)), shift


def write_adapted_operating_point(point_file: str | Path, detections: str | Path, brainmasks: dict[str, str],
                                  options: dict, inference: dict, dataset: str, output: str | Path) -> dict:
    """Adapt a detector's operating point (``point_file``) to ``dataset`` without labels and
    write it to ``output``: its background score (:func:`background_score`) from ``detections``
    (the detector's candidate table on the dataset: ``subject``, ``x y z`` world mm RAS+, ``score``) inside each subject's
    brain (``brainmasks``: key -> model-ready brain mask; the search reaches beyond it, and the home
    level was measured inside), against the ``background_score`` of the validation subjects
    in ``point_file``. ``options``: config ``detector.operating_point``; ``inference``: the
    ``detector.inference`` the candidates were found with. Returns what was written."""
    point = json.loads(Path(point_file).read_text())
    base = {key: point[key] for key in ("threshold", "criterion", "subjects", "source") if key in point}
    if "background_score" not in point:
        log.warning("%s has no background_score (chosen on no subjects, or before cmbflow adapted thresholds to sites): "
                    "%s is judged at the model's own threshold; rerun the choose_operating_point rule for the model "
                    "(with validation subjects) to adapt it", point_file, dataset)
        record = {**base, "source": f"{point.get('source', 'operating point')}; not adapted to {dataset}: {point_file} "
                                    "has no background_score"}
        write_json_atomic(output, record)
        return record
    chosen_with = point.get("inference") or {}
    differing = [key for key in ("score_threshold", "nms_iou", "max_candidates", "brain_margin_mm", "tta_flips")
                 if key in chosen_with and chosen_with[key] != inference.get(key)]
    if differing:
        log.warning("%s was chosen with other inference settings (%s) than %s's candidates: the background scores "
                    "compare less well", point_file, ", ".join(f"detector.inference.{key}" for key in differing), dataset)
    table = pd.read_csv(detections, sep="\t", dtype={"subject": str})
    ranks = tuple(point["background_ranks"])  # written with background_score: the home level's own ranks
    scores = []
    for key, mask_path in brainmasks.items():
        brain, affine = load_volume(mask_path, dtype=np.uint8)
        rows = table[table["subject"] == key]
        # the table's i j k are voxels of the original image; the mask's grid is the model-ready one
        on_grid = pd.DataFrame(world_to_voxel(affine, rows[["x", "y", "z"]].to_numpy(float).reshape(-1, 3)),
                               columns=["i", "j", "k"])
        scores.append(rows["score"].to_numpy(float)[inside_brain(on_grid, brain)])
    site_level = background_score(scores, ranks, float(inference["score_threshold"]))
    threshold, shift = adapt_threshold(float(point["threshold"]), float(point["background_score"]), site_level,
                                       float(options["max_logit_shift"]))
    log.info("%s: background score %.3f against %.3f at home: threshold %.3f -> %.3f (logit shift %+.2f)", dataset,
             site_level, point["background_score"], point["threshold"], threshold, shift)
    record = {**base, "threshold": threshold, "model_threshold": float(point["threshold"]),
              "source": (f"{point.get('source', 'operating point')}, adapted to {dataset} without labels (background score "
                         f"{site_level:.3f} against {float(point['background_score']):.3f}: logit shift {shift:+.2f})"),
              "adaptation": {"dataset": dataset, "background_score": site_level,
                             "home_background_score": float(point["background_score"]), "background_ranks": list(ranks),
                             "logit_shift": shift, "max_logit_shift": float(options["max_logit_shift"]),
                             "subjects": sorted(brainmasks), "model_operating_point": str(point_file)}}
    write_json_atomic(output, record)
    return record


def inside_brain(table: pd.DataFrame, brain: np.ndarray, margin_voxels: int = 1) -> np.ndarray:
    """Which candidates (``i j k`` voxel of the model-ready grid) lie in ``brain`` grown by
    ``margin_voxels``. The search reaches 10 mm beyond the brain and anatomical filtering removes
    what lies outside; the threshold is chosen on what filtering would keep, else a confident
    false positive on the skull band of one validation subject sets it for every site."""
    from scipy import ndimage

    grown = ndimage.binary_dilation(brain.astype(bool), iterations=margin_voxels) if margin_voxels else brain.astype(bool)
    ijk = np.clip(np.rint(table[["i", "j", "k"]].to_numpy(float)).astype(int), 0, np.array(brain.shape) - 1)
    return grown[tuple(ijk.T)] if len(ijk) else np.zeros(0, bool)
