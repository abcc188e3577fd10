"""Detection over the subjects of one dataset with one trained variant (one workflow job:
torch and the model load once, not once per subject)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pandas as pd

from cmbflow.device import default_device
from cmbflow.inference.detect import CANDIDATE_COLUMNS, InferenceSettings, detect_subject
from cmbflow.logs import progress
from cmbflow.models.weights import load_model

log = logging.getLogger(__name__)


def run_detection(weights: str, card: str, subjects: dict[str, dict], options: dict, outputs: dict[str, str],
                  subject_tables: dict[str, str], probability_maps: dict[str, str] | None = None,
                  show_progress: bool = False) -> pd.DataFrame:
    """Detect CMBs in every subject and write the tables.

    ``subjects``: key -> ``{"files": preprocessed files, "original": original magnitude}``;
    ``options``: config ``detector.inference``; ``outputs``: ``table`` of
    :func:`cmbflow.paths.detection_files`; ``subject_tables`` / ``probability_maps``: key -> path.
    Returns the dataset's candidate table.
    """
    model, model_card = load_model(weights, card)
    settings = InferenceSettings.from_config(options)
    device = default_device()
    tables = []
    for key in progress(sorted(subjects), show_progress, "inference"):
        start = time.perf_counter()
        table = detect_subject(model, model_card, key, subjects[key]["files"], subjects[key]["original"],
                               settings, device, (probability_maps or {}).get(key))
        Path(subject_tables[key]).parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(subject_tables[key], sep="\t", index=False, float_format="%.4f")
        tables.append(table)
        log.info("sub-%s: %d candidates (best score %.3f) in %.1f s on %s", key, len(table),
                 table["score"].max() if len(table) else 0.0, time.perf_counter() - start, device)
    candidates = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=CANDIDATE_COLUMNS)
    Path(outputs["table"]).parent.mkdir(parents=True, exist_ok=True)
    candidates.to_csv(outputs["table"], sep="\t", index=False, float_format="%.4f")
    return candidates
