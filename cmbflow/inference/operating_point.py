"""The detector's operating point, chosen on the validation subjects of training.

Training holds back a seeded share of its subjects for validation (never the test split).
After training, the detector runs over those subjects' whole volumes with the default
inference settings, candidates are matched to the CMB masks on the model-ready grid (mask
hit rule, one voxel of dilation), and the threshold with the highest F1 is chosen
(:func:`cmbflow.evaluation.froc.choose_operating_point`). The model card stores it, so new
data is judged at the same threshold.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import torch

from cmbflow.evaluation.detection import match_candidates
from cmbflow.evaluation.froc import choose_operating_point
from cmbflow.inference.detect import InferenceSettings, detect_candidates, predict_volume
from cmbflow.models.weights import build_detector

log = logging.getLogger(__name__)


def validation_operating_point(state: dict[str, torch.Tensor], network: dict, anchors_mm, subjects: list,
                               fallback: float = 0.5, device: torch.device | None = None) -> dict:
    """Operating point of the detector ``state`` (its ``network`` record) on ``subjects``
    (:class:`cmbflow.training.patches.SubjectVolumes`): ``threshold``, ``criterion``, the
    metrics there, and the ``subjects`` it was chosen on. ``fallback`` without validation CMBs."""
    model = build_detector(network)
    model.load_state_dict(state)
    settings = InferenceSettings()
    matched, n_lesions = [], 0
    for subject in subjects:
        outputs = predict_volume(model, subject.image, settings, device)
        table, _ = detect_candidates(outputs, subject.brain, anchors_mm, subject.spacing, settings)
        table = table.rename(columns={"grid_i": "i", "grid_j": "j", "grid_k": "k"})
        matched.append(match_candidates(table, subject.labels).assign(subject=subject.key))
        n_lesions += len(np.unique(subject.labels[subject.labels > 0]))
    candidates = pd.concat(matched, ignore_index=True) if matched else pd.DataFrame(columns=["score", "outcome"])
    point = choose_operating_point(candidates, n_lesions, len(subjects), fallback)
    point = {key: (float(value) if isinstance(value, (float, np.floating)) else value) for key, value in point.items()}
    log.info("operating point %.3f (%s): sensitivity %.3f, %.2f FPs per subject on %d validation subjects (%d CMBs)",
             point["threshold"], point["criterion"], point["sensitivity"], point["fp_per_subject"], len(subjects), n_lesions)
    return {**point, "subjects": [subject.key for subject in subjects]}
