"""Example figures of one dataset from its candidate and evaluation tables."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from cmbflow.figures.examples import candidate_panels, filtered_candidates


def saliency_maps(models: dict[str, dict[str, str]], subjects: dict[str, dict[str, str]]):
    """``saliency(variant, subject, voxel) -> (patch, centre)`` for :func:`candidate_panels`:
    each variant's model (``models``: variant -> ``weights``, ``card``) on the subject's
    preprocessed files (``subjects``: key -> ``swi``, ``phase``, ``brainmask``), read once."""
    from cmbflow.figures.saliency import saliency_at  # torch and MONAI only where saliency is drawn
    from cmbflow.io.model_input import PhaseScaling, load_model_input, model_inputs
    from cmbflow.models.weights import load_model

    loaded, images = {}, {}

    def saliency(variant: str, key: str, voxel) -> tuple[np.ndarray, np.ndarray]:
        if variant not in loaded:
            loaded[variant] = load_model(models[variant]["weights"], models[variant]["card"])
        model, card = loaded[variant]
        # the inputs as this model reads them (its channels, its phase scaling), read once for models that agree
        reading = (key, json.dumps(card.get("normalization"), sort_keys=True), tuple(model_inputs(card)))
        if reading not in images:
            scaling = PhaseScaling.from_record(card.get("normalization"), f"model card of {variant}")
            images[reading] = load_model_input(subjects[key], scaling, model_inputs(card)).image
        patch = np.asarray(card["training"]["patch_size"], int)
        return saliency_at(model, images[reading], voxel, patch), patch // 2

    return saliency


def example_figures(runs: dict[str, dict[str, str]], swi: dict[str, str], regions: dict[str, str], dataset: str,
                    filtered_variant: str, outputs: dict[str, str], models: dict[str, dict[str, str]] | None = None,
                    subjects: dict[str, dict[str, str]] | None = None) -> None:
    """``runs``: variant -> ``candidates`` (localized table) and, where annotated, ``matched``
    and ``summary`` of its evaluation; ``outputs``: ``panels``, ``filtered`` and their ``_pdf``.
    Without annotations the panels show the best candidates, unjudged. With ``models`` and
    ``subjects`` (:func:`saliency_maps`), each panel gets its saliency map beside it."""
    matched, thresholds = {}, {}
    for variant, files in runs.items():
        if files.get("matched"):
            table = pd.read_csv(files["matched"], sep="\t", dtype={"subject": str, "candidate": str})
            matched[variant] = table[table["filter"] == "after"]
            thresholds[variant] = float(pd.read_csv(files["summary"], sep="\t")["threshold"].iloc[0])
        else:
            table = pd.read_csv(files["candidates"], sep="\t", dtype={"subject": str, "candidate": str})
            matched[variant] = table[table["kept"].astype(bool)].assign(outcome="candidate")
            thresholds[variant] = 0.0
    saliency = saliency_maps(models, subjects) if models and subjects else None
    candidate_panels(matched, swi, thresholds, f"{dataset}: best candidates per variant (TP green, FP red)",
                     outputs["panels"], outputs["panels_pdf"], saliency=saliency)
    candidates = pd.read_csv(runs[filtered_variant]["candidates"], sep="\t", dtype={"subject": str, "candidate": str})
    filtered_candidates(candidates, swi, regions, f"{dataset}, {filtered_variant}: anatomical filtering",
                        outputs["filtered"], outputs["filtered_pdf"])
