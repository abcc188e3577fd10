"""Runs that start from the tiny run: its trained models on new data (a results folder holding
only the models, and a real scanner's DICOM), and copies of it with one change (a dataset
without phase, fine-tuning and calibration). They only read the tiny run, so
:func:`start_new_data_runs` starts them beside the other workflow tests as soon as it exists
(conftest ``tiny_run``); their tests wait for them and check what they wrote."""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from cmbflow import paths
from tests.workflow.tiny import REPO, TINY_DETECTOR, TINY_LOCALIZER, TINY_PREPROCESSING, BackgroundRun, start_snakemake

SHARED_DICOM = REPO.parent / "shared" / "data" / "dcm_qa_fmap" / "In"
MODELS = {"rpn": "results/models/rpn", "localizer": "results/models/localizer"}
MODELS_ONLY_TEST = "test_trained_models_run_new_data_from_a_results_folder_holding_only_them"
DICOM_TEST = "test_a_real_scanners_dicom_goes_through_conversion_preprocessing_detection_and_census"
SWI_ONLY_TEST = "test_a_dataset_without_phase_runs_with_a_one_channel_detector_and_refuses_two_channel_ones"
FINE_TUNE_TEST = "test_fine_tuning_and_calibration_use_only_calibration_subjects_that_are_never_scored"


@dataclass
class NewDataRun:
    run: BackgroundRun
    config: dict
    before: dict[Path, str] = field(default_factory=dict)  # files the run must leave as they were -> sha256


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def new_data_config(config: dict, datasets: dict) -> dict:
    """The tiny run's settings with its trained models (config ``models``) on ``datasets``."""
    return {"datasets": datasets, "models": MODELS, "synth": config["synth"], "preprocessing": TINY_PREPROCESSING,
            "localizer": TINY_LOCALIZER,
            "detector": {key: TINY_DETECTOR[key] for key in ("inference", "operating_point")},
            "evaluation": config["evaluation"]}


def as_itk_formats(bids: Path, subject: str) -> dict[str, list[str]]:
    """Rewrite ``subject``'s magnitude as NRRD and phase as MetaImage (the NIfTIs removed), as
    Slicer or ITK-based tools export them; returns the dataset's patterns for them."""
    import ants

    from cmbflow.io.nifti import load_volume
    from cmbflow.preprocessing.antsimage import to_ants

    anat = bids / f"sub-{subject}" / "anat"
    for part, extension in (("mag", ".nrrd"), ("phase", ".mha")):
        source = anat / f"sub-{subject}_part-{part}_swi.nii.gz"
        ants.image_write(to_ants(*load_volume(source)), str(anat / f"sub-{subject}_part-{part}_swi{extension}"))
        source.unlink()
    return {"magnitude": ["sub-{subject}/anat/sub-{subject}_part-mag_swi.nrrd"],
            "phase": ["sub-{subject}/anat/sub-{subject}_part-phase_swi.mha"]}


def start_models_only_run(workdir: Path, config: dict, user_bids: Path, root: Path) -> NewDataRun:
    """A fresh folder holding only the models, on the user's first scan with its annotations and
    without them (one subject each: what is checked is which threshold scores the one and that
    the other gets a census). The unannotated copy is stored as NRRD and MetaImage, so that
    detection and export map positions back through an ITK header (oblique: an asymmetric
    direction matrix)."""
    fresh = root / "fresh"
    for name in ("rpn", "localizer"):
        shutil.copytree(workdir / "results/models" / name, fresh / "results/models" / name)
    annotated, unannotated = root / "annotated", root / "unannotated"
    shutil.copytree(user_bids, annotated, ignore=shutil.ignore_patterns("sub-002"))
    shutil.copytree(user_bids, unannotated, ignore=shutil.ignore_patterns("derivatives", "sub-002"))
    before = {p: sha256(p) for p in (fresh / "results/models").rglob("*") if p.is_file()}
    datasets = {"user_scans": {**config["datasets"]["user_scans"], "bids_dir": str(annotated)},
                "new_scans": {"bids_dir": str(unannotated), "role": "external", "phase_sign": -1,
                              "patterns": as_itk_formats(unannotated, "001")}}
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


def swi_only_datasets(config: dict, user_bids: Path, root: Path) -> dict:
    """The tiny run's synthetic sites and a copy of the user's first subject without its phase
    images (``phase: false``)."""
    swi_only = root / "swi_only"
    shutil.copytree(user_bids, swi_only, ignore=shutil.ignore_patterns("sub-002", "*part-phase*"))
    return {name: config["datasets"][name] for name in ("tiny_internal", "tiny_train")} | {
            "swi_scans": {"bids_dir": str(swi_only), "role": "external", "phase": False}}


def start_swi_only_run(workdir: Path, config: dict, user_bids: Path, root: Path) -> NewDataRun:
    """A copy of the tiny run with a one-channel variant (inputs [swi]) on the SWI-only scans; the
    tiny run's preprocessing and localizer are reused. ``config["datasets"]`` of the returned
    run: the datasets of the override."""
    datasets = swi_only_datasets(config, user_bids, root)
    copy = root / "copy"
    shutil.copytree(workdir, copy, symlinks=True)  # copy2 keeps times: only what the change touches reruns
    variants = {"swi": {"fuse_levels": True, "hspl": False, "inputs": ["swi"]}}
    targets = [paths.evaluation_files("swi", name)["summary"] for name in ("tiny_internal", "swi_scans")]  # no figures
    return NewDataRun(start_snakemake(copy, config, override={"datasets": datasets, "detector": {"variants": variants}},
                                      targets=targets), {**config, "datasets": datasets})


def start_fine_tune_run(workdir: Path, config: dict, root: Path) -> NewDataRun:
    """A copy of the tiny run with one user subject set aside for calibration and fine-tuning."""
    copy = root / "copy"
    shutil.copytree(workdir, copy, symlinks=True)
    datasets = {**config["datasets"], "user_scans": {**config["datasets"]["user_scans"], "calibration_subjects": 1,
                                                      "calibrate": True}}
    override = {"datasets": datasets, "census": {"score_threshold": None},
                "fine_tune": {"rpn_tuned": {"parent": "rpn", "dataset": "user_scans", "iterations": 2}}}
    # what the test reads, without the figures
    targets = [paths.evaluation_files("rpn", "tiny_internal")["summary"], paths.model_files("rpn_tuned")["operating_point"]] + [
        path for variant in ("rpn", "rpn_ffm_hspl", "rpn_tuned")
        for path in (paths.evaluation_files(variant, "user_scans")["summary"], paths.census_files(variant, "user_scans")["counts"])]
    return NewDataRun(start_snakemake(copy, config, override=override, targets=targets), {**config, **override})


def start_new_data_runs(selected: set[str], workdir: Path, config: dict, user_bids: Path, mktemp) -> dict[str, NewDataRun]:
    """The runs of the ``selected`` tests (test name -> run), started; ``mktemp(name)`` gives a folder."""
    runs = {}
    if MODELS_ONLY_TEST in selected:
        runs[MODELS_ONLY_TEST] = start_models_only_run(workdir, config, user_bids, mktemp("models_only"))
    if DICOM_TEST in selected and SHARED_DICOM.is_dir():
        runs[DICOM_TEST] = start_dicom_run(workdir, config, mktemp("dicom"))
    if SWI_ONLY_TEST in selected:
        runs[SWI_ONLY_TEST] = start_swi_only_run(workdir, config, user_bids, mktemp("swi_only"))
    if FINE_TUNE_TEST in selected:
        runs[FINE_TUNE_TEST] = start_fine_tune_run(workdir, config, mktemp("fine_tune"))
    return runs
