"""Trained models on new data, from the tiny run: a results folder holding only the models, and
a real scanner's DICOM. Both runs only read the tiny run, so :func:`start_new_data_runs` starts
them beside the other workflow tests as soon as it exists (conftest ``tiny_run``); their tests
wait for them and check what they wrote."""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

from tests.workflow.tiny import REPO, TINY_DETECTOR, TINY_LOCALIZER, TINY_PREPROCESSING, BackgroundRun, start_snakemake

SHARED_DICOM = REPO.parent / "shared" / "data" / "dcm_qa_fmap" / "In"
MODELS = {"rpn": "results/models/rpn", "localizer": "results/models/localizer"}
MODELS_ONLY_TEST = "test_trained_models_run_new_data_from_a_results_folder_holding_only_them"
DICOM_TEST = "test_a_real_scanners_dicom_goes_through_conversion_preprocessing_detection_and_census"


@dataclass
class NewDataRun:
    run: BackgroundRun
    config: dict
    before: dict[Path, str]  # files the run must leave as they were -> sha256


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def new_data_config(config: dict, datasets: dict) -> dict:
    """The tiny run's settings with its trained models (config ``models``) on ``datasets``."""
    return {"datasets": datasets, "models": MODELS, "synth": config["synth"], "preprocessing": TINY_PREPROCESSING,
            "localizer": TINY_LOCALIZER, "detector": {"inference": TINY_DETECTOR["inference"]},
            "evaluation": config["evaluation"]}


def start_models_only_run(workdir: Path, config: dict, user_bids: Path, root: Path) -> NewDataRun:
    """A fresh folder holding only the models, on the user's annotated scans and an unannotated copy."""
    fresh = root / "fresh"
    for name in ("rpn", "localizer"):
        shutil.copytree(workdir / "results/models" / name, fresh / "results/models" / name)
    unannotated = root / "unannotated"
    shutil.copytree(user_bids, unannotated, ignore=shutil.ignore_patterns("derivatives"))
    before = {p: sha256(p) for p in (fresh / "results/models").rglob("*") if p.is_file()}
    datasets = {"user_scans": config["datasets"]["user_scans"],
                "new_scans": {"bids_dir": str(unannotated), "role": "external", "phase_sign": -1}}
    new = new_data_config(config, datasets)
    return NewDataRun(start_snakemake(fresh, new), new, before)


def start_dicom_run(workdir: Path, config: dict, root: Path) -> NewDataRun:
    """The shared Siemens DICOM with the models, and the atlas and registration template the tiny
    run built (the models-only run shows a folder of models alone builds them)."""
    fresh = root / "fresh"
    for folder in ("models/rpn", "models/localizer", "atlas", "synth/template"):
        shutil.copytree(workdir / "results" / folder, fresh / "results" / folder)
    before = {p: sha256(p) for p in SHARED_DICOM.rglob("*") if p.is_file()}
    datasets = {"scanner": {"dicom_dir": str(SHARED_DICOM), "role": "external", "dicom": {"subjects": "Siemens"}}}
    new = new_data_config(config, datasets)
    return NewDataRun(start_snakemake(fresh, new), new, before)


def start_new_data_runs(selected: set[str], workdir: Path, config: dict, user_bids: Path, mktemp) -> dict[str, NewDataRun]:
    """The runs of the ``selected`` tests (test name -> run), started; ``mktemp(name)`` gives a folder."""
    runs = {}
    if MODELS_ONLY_TEST in selected:
        runs[MODELS_ONLY_TEST] = start_models_only_run(workdir, config, user_bids, mktemp("models_only"))
    if DICOM_TEST in selected and SHARED_DICOM.is_dir():
        runs[DICOM_TEST] = start_dicom_run(workdir, config, mktemp("dicom"))
    return runs
