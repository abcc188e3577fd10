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

from cmbflow.evaluation.detection import HitRule, match_candidates
from cmbflow.evaluation.froc import choose_operating_point
from cmbflow.inference.detect import InferenceSettings, find_candidates
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
    matched, n_lesions = [], 0
    for subject in subjects:
        table, _, _ = find_candidates(model, subject.image, subject.brain, anchors_mm, subject.spacing, settings, device)
        table = table.rename(columns={"grid_i": "i", "grid_j": "j", "grid_k": "k"})
        table = table[inside_brain(table, subject.brain)]
        # the validation subjects' instance masks on the model-ready grid: the schema's mask rule
        matched.append(match_candidates(table, subject.labels, HitRule.defaults(kind="mask")).assign(subject=subject.key))
        n_lesions += len(np.unique(subject.labels[subject.labels > 0]))
    candidates = pd.concat(matched, ignore_index=True) if matched else pd.DataFrame(columns=["score", "outcome"])
    point = choose_operating_point(candidates, n_lesions, len(subjects), fallback, **(criterion or {}))
    point = {key: (float(value) if isinstance(value, (float, np.floating)) else value) for key, value in point.items()}
    log.info("operating point %.3f (%s): sensitivity %.3f, %.2f FPs per subject on %d validation subjects (%d CMBs)",
             point["threshold"], point["criterion"], point["sensitivity"], point["fp_per_subject"], len(subjects), n_lesions)
    return {**point, "subjects": [subject.key for subject in subjects]}


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

    ``home_datasets``: the home sites (config role ``internal``). Training-only draws (role
    ``train``, the randomized cohort's 7 T, air-artefact and SNR-8 scanners) train the network
    for sites it never saw, but a threshold set at 1 FP per subject on them sat above what any
    scored site needed: in run 4 of docs/results.md the census missed 1.3–2.5 CMBs a subject
    on the external and unseen sites at it, 1.0–2.0 at the home validation subjects' threshold."""
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
