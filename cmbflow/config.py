"""Workflow configuration: the dataset list, its subjects and the train/test split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from cmbflow import paths
from cmbflow.io.bids import discover_subjects
from cmbflow.synth.site import SiteParams


def datasets_from_cli(configfiles) -> dict | None:
    """The ``datasets`` mapping of the last ``--configfile`` that sets one, else None.

    Snakemake merges ``--configfile`` into config.yaml key by key; for ``datasets`` that
    would add the user's data to the synthetic cohort, so the user's mapping replaces it.
    """
    chosen = None
    for path in configfiles or []:
        content = yaml.safe_load(Path(path).read_text()) or {}
        if "datasets" in content:
            chosen = content["datasets"]
    return chosen


def check_config(config: dict) -> None:
    """Cross-key checks the JSON schema cannot express."""
    sites = config["synth"].get("sites", {})
    for name, dataset in config["datasets"].items():
        site = dataset.get("synthetic_site")
        if site is not None and site not in sites:
            raise ValueError(f"datasets.{name}.synthetic_site is '{site}', but synth.sites has only {sorted(sites)}.")
    template_site = config["synth"].get("template_site")
    if template_site is not None and template_site not in sites:
        raise ValueError(f"synth.template_site is '{template_site}', but synth.sites has only {sorted(sites)}.")


def bids_dir(dataset: dict) -> str:
    """Root folder of a dataset: its ``bids_dir``, or where its synthetic site is written."""
    site = dataset.get("synthetic_site")
    return paths.synth_root(site) if site is not None else dataset["bids_dir"]


def subject_keys(name: str, dataset: dict, config: dict) -> list[str]:
    """Subject keys of a dataset: known from config for a synthetic site, discovered for real data."""
    site = dataset.get("synthetic_site")
    if site is not None:
        return paths.synth_subject_ids(SiteParams.from_config(site, config["synth"]["sites"][site]).n_subjects)
    return [files.key for files in discover_subjects(name, dataset)]


def split_subjects(keys: list[str], test_fraction: float, seed: int) -> dict[str, str]:
    """Seeded train/test split: subject key -> ``train`` or ``test`` (at least one of each
    when there are two or more subjects). Independent of the order of ``keys``."""
    ordered = sorted(keys)
    order = np.random.default_rng(seed).permutation(len(ordered))
    n_test = int(round(test_fraction * len(ordered)))
    n_test = min(max(n_test, 1), len(ordered) - 1) if len(ordered) > 1 else 0
    test = {ordered[i] for i in order[:n_test]}
    return {key: "test" if key in test else "train" for key in ordered}
