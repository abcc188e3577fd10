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

Its adaptation to each external site, without labels, is the next step
(:mod:`cmbflow.evaluation.site_adaptation`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cmbflow.evaluation.detection import HitRule, match_candidates
from cmbflow.evaluation.froc import choose_operating_point
from cmbflow.evaluation.site_adaptation import BACKGROUND_RANKS, background_score, inside_brain
from cmbflow.inference.detect import InferenceSettings, find_candidates
from cmbflow.io.jsonfile import write_json_atomic
from cmbflow.io.model_input import PhaseScaling, model_inputs
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
