"""The t-SNE figure of one variant on one dataset (Fig. 7), from the evaluation outputs."""

from __future__ import annotations

import json
import logging

import pandas as pd

from cmbflow.evaluation.detection import definite_lesions
from cmbflow.evaluation.embedding import collect_vectors, embed
from cmbflow.figures.evaluation import plot_embedding
from cmbflow.models.weights import load_model

log = logging.getLogger(__name__)


def feature_embedding(weights: str, card: str, subjects: dict[str, dict[str, str]], candidates: str,
                      evaluation: dict[str, str], title: str, outputs: dict[str, str], seed: int = 0,
                      cpu_bfloat16: bool = False) -> pd.DataFrame:
    """Collect TP / FP / FN / TN vectors (in inference's precision, ``cpu_bfloat16``), embed them
    with t-SNE, write ``outputs``: ``table`` (TSV with ``tsne_1``, ``tsne_2``), ``png`` and ``pdf``."""
    model, model_card = load_model(weights, card)
    table = pd.read_csv(candidates, sep="\t", dtype={"subject": str, "candidate": str})
    matched = pd.read_csv(evaluation["matched"], sep="\t", dtype={"subject": str, "candidate": str})
    lesions = pd.read_csv(evaluation["lesions"], sep="\t", dtype={"subject": str})
    lesions = definite_lesions(lesions)  # possible CMBs are neither found nor missed
    threshold = float(pd.read_csv(evaluation["summary"], sep="\t")["threshold"].iloc[0])
    groups, group_vectors = collect_vectors(model, model_card, subjects, table, matched, lesions, threshold, seed=seed,
                                            cpu_bfloat16=cpu_bfloat16)
    coords = embed(group_vectors, seed)
    groups["tsne_1"], groups["tsne_2"] = coords[:, 0], coords[:, 1]
    groups.to_csv(outputs["table"], sep="\t", index=False, float_format="%.4f")
    plot_embedding(groups, title, outputs["png"], outputs["pdf"])
    log.info("t-SNE of %s", json.dumps(groups["kind"].value_counts().to_dict()))
    return groups
