"""The detector's operating point: its own step after training (rule ``choose_operating_point``).

Training holds back a seeded share of its subjects for validation (never the test split) and
names them in the model card. This step runs the trained detector over those subjects' whole
volumes with the **configured** inference settings (``detector.inference``: changing them
re-runs this step, not training), matches candidates to the CMB masks on the model-ready
grid (mask hit rule, one voxel of dilation) and chooses the threshold by config
``detector.operating_point`` (at most ``fp_per_subject`` false positives per subject, or the highest F1)
(:func:`cmbflow.evaluation.froc.choose_operating_point`). It writes ``operating_point.json``
into the model folder, the one file the census, the tables and the figures read, so a copied
model folder judges new data at the same threshold.

**Adaptation to a site, without labels** (rule ``adapt_operating_point``, config
``detector.operating_point.site_adaptation``). On a site it never saw, the network's scores sit
lower (or higher) as a whole: for the lesions and for the dark spots that are not lesions alike.
At the home threshold the census then missed 1.2-1.7 CMBs a subject on the unseen site with no
false positive at all (docs/results.md). The candidates ranked deep in each subject's list
(40th to 80th by default) are nearly all background, so their score level, measured the same way
on the validation subjects and on the site's own subjects, says how far the site's scores
moved. The threshold moves by the same amount in logit (:func:`adapt_threshold`). It reads no
annotation: it uses the site's candidates only, so it works on unlabelled data, and a scored
subject's labels never reach it.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.special import expit, logit

from cmbflow.evaluation.detection import HitRule, match_candidates
from cmbflow.evaluation.froc import choose_operating_point
from cmbflow.inference.detect import InferenceSettings, find_candidates
from cmbflow.io.coords import world_to_voxel
from cmbflow.io.model_input import PhaseScaling, model_inputs
from cmbflow.io.nifti import load_volume
from cmbflow.models.weights import build_detector
from cmbflow.training.patches import load_subject

log = logging.getLogger(__name__)


def validation_operating_point(state: dict[str, torch.Tensor], network: dict, anchors_mm, subjects: list,
                               settings: InferenceSettings | None = None, fallback: float = 0.5,
                               device: torch.device | None = None, criterion: dict | None = None) -> dict:
    """Operating point of the detector ``state`` (its ``network`` record) on ``subjects``
    (:class:`cmbflow.training.patches.SubjectVolumes`) with inference ``settings``:
    ``threshold``, ``criterion``, the metrics there, and the ``subjects`` it was chosen on.
    ``fallback`` without validation CMBs."""
    if not subjects:
        log.warning("no validation subjects to choose the operating point on (too few training subjects for "
                    "detector.training.validation_fraction): it keeps every candidate; calibrate it on a site's "
                    "annotated subjects (datasets.<name>.calibrate) or set census.score_threshold")
    model = build_detector(network)
    model.load_state_dict(state)
    settings = settings or InferenceSettings.defaults()
    criterion = dict(criterion or {})
    ranks = tuple(criterion.get("background_ranks", BACKGROUND_RANKS))
    matched = [matched_candidates(model, subject, anchors_mm, settings, device) for subject in subjects]
    n_lesions = sum(len(np.unique(subject.labels[subject.labels > 0])) for subject in subjects)
    candidates = pd.concat(matched, ignore_index=True) if matched else pd.DataFrame(columns=["score", "outcome"])
    point = choose_operating_point(candidates, n_lesions, len(subjects), fallback,
                                   **{key: criterion[key] for key in ("criterion", "fp_per_subject") if key in criterion})
    point = {key: (float(value) if isinstance(value, (float, np.floating)) else value) for key, value in point.items()}
    if subjects:  # what the site adaptation compares a site with: the same measure on these subjects
        point["background_score"] = background_score([table["score"].to_numpy(float) for table in matched], ranks,
                                                     settings.score_threshold)
        point["background_ranks"] = list(ranks)
    log.info("operating point %.3f (%s): sensitivity %.3f, %.2f FPs per subject on %d validation subjects (%d CMBs); "
             "background score %s", point["threshold"], point["criterion"], point["sensitivity"], point["fp_per_subject"],
             len(subjects), n_lesions, f"{point['background_score']:.3f}" if subjects else "none")
    return {**point, "subjects": [subject.key for subject in subjects]}


def matched_candidates(model, subject, anchors_mm, settings: InferenceSettings,
                       device: torch.device | None = None) -> pd.DataFrame:
    """The candidates of ``model`` on one annotated ``subject`` (:class:`cmbflow.training.patches.SubjectVolumes`)
    inside its brain (voxel ``i j k`` of the model-ready grid), matched to its CMB instance mask
    by the schema's mask rule (``score``, ``outcome``, ...), with ``subject`` (its key)."""
    table, _, _ = find_candidates(model, subject.image, subject.brain, anchors_mm, subject.spacing, settings, device)
    table = table.rename(columns={"grid_i": "i", "grid_j": "j", "grid_k": "k"})
    table = table[inside_brain(table, subject.brain)]
    return match_candidates(table, subject.labels, HitRule.defaults(kind="mask")).assign(subject=subject.key)


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


def write_operating_point(weights: str | Path, card: str | Path, subject_files: dict[str, dict[str, str]],
                          inference: dict, output: str | Path, names: list[str] | None = None,
                          source: str = "validation subjects of training (model card data_split.validation)",
                          criterion: dict | None = None, home_datasets: list[str] | None = None) -> dict:
    """Choose the operating point of a trained detector on ``names`` (``<dataset>/<key>``;
    default: the validation subjects its card names, only those of ``home_datasets`` when it
    names any) with the ``inference`` options, and write it to ``output`` (JSON) with its
    ``source``. ``subject_files``: ``<dataset>/<key>`` -> preprocessed files, a superset of
    ``names``. Returns what was written.

    ``home_datasets``: the home sites (config role ``internal``), given where config
    ``detector.operating_point.subjects`` is ``home``; None (the default): every validation subject,
    those of training-only draws (role ``train``) too. Run 4 of docs/results.md chose the home
    site's alone (the randomized scanners' threshold sat above what the external sites needed,
    before the site adaptation); but a seeded fifth of the training subjects leaves the home site
    1-3 of them, and at eight trainings the census error was 1.1-1.7 a subject on their threshold
    against 0.7-0.8 on all five (docs/results.md, "Training length")."""
    content = json.loads(Path(card).read_text())  # the weights are read once, below
    if names is None:
        names = list(content["data_split"]["validation"])
        home = [name for name in names if name.split("/")[0] in (home_datasets or [])]
        if home and len(home) < len(names):
            log.info("operating point on the home site's validation subjects %s; not on %s", home,
                     sorted(set(names) - set(home)))
            source = f"{source}, those of the home site ({', '.join(sorted({n.split('/')[0] for n in home}))}) only"
            names = home
    names = list(names)
    missing = [name for name in names if name not in subject_files]
    if missing:
        raise ValueError(f"{card}: subjects {missing} to choose the operating point on are not inputs of this run")
    scaling = PhaseScaling.from_record(content.get("normalization"), str(card))
    subjects = [load_subject(name, subject_files[name], scaling, model_inputs(content)) for name in names]
    settings = InferenceSettings.from_config(inference)
    state = torch.load(weights, map_location="cpu", weights_only=True)["detector"]
    point = validation_operating_point(state, content["network"], content["anchors_mm"], subjects, settings,
                                       criterion=criterion)
    record = {**point, "source": source,
              "inference": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(settings).items()}}
    write_json_atomic(output, record)
    return record


def write_json_atomic(path: str | Path, content: dict) -> None:
    """Write JSON whole or not at all (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(content, indent=2, default=str) + "\n")
    os.replace(temporary, path)
