"""Session fixtures of the workflow tests: the user's dataset, one local run of the tiny config
and the same run through SLURM, started beside it."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

import pytest
import yaml

from cmbflow import paths

from tests.workflow.new_data import NewDataRun, start_new_data_runs
from tests.workflow.tiny import REPO, TINY_SITE, BackgroundRun, snakemake, start_snakemake, tiny_config

CLUSTER = REPO / "tests/cluster"
SLURM_TEST = "test_tiny_workflow_through_slurm_equals_the_local_run"


@pytest.fixture(scope="session")
def user_bids(tmp_path_factory):
    """A user's dataset: two subjects written by `cmbflow synth` (oblique LAS, scanner phase)."""
    out = tmp_path_factory.mktemp("user") / "bids"
    config = tmp_path_factory.mktemp("cfg") / "synth.yaml"
    scan = dict(TINY_SITE, orientation="LAS", oblique_deg=10.0, phase_storage="scanner", phase_sign=-1, n_subjects=2)
    config.write_text(yaml.safe_dump({"synth": {"seed": 3, "sites": {"scan": scan}}}))
    subprocess.run([sys.executable, "-m", "cmbflow.cli", "synth", "--site", "scan", "--out", str(out), "--config", str(config),
                    "--no-progress"], check=True, timeout=300)
    return out


@dataclass
class ClusterRun:
    """The tiny workflow running through SLURM in the background (:func:`cluster_run`)."""
    run: BackgroundRun | None = None
    env: dict | None = None
    skip: str = ""  # why this machine cannot run the cluster


CLUSTER_DATASETS = ("tiny_internal", "tiny_train")
CLUSTER_VARIANT = "rpn"
# What the cluster run is asked for: the tables the SLURM test compares, so every job they need
# (synthesis to evaluation, checkpoint and groups included) and none of the figures.
CLUSTER_TARGETS = [*(paths.output("inputs", name, suffix=table, ext=".tsv") for name in CLUSTER_DATASETS for table in ("manifest", "split")),
                   paths.candidate_files(CLUSTER_VARIANT, "tiny_internal")["table"],
                   *paths.census_files(CLUSTER_VARIANT, "tiny_internal").values(),
                   paths.evaluation_files(CLUSTER_VARIANT, "tiny_internal")["summary"],
                   paths.anatomical_filtering(), paths.localization_accuracy(), paths.evaluation_table("models_by_site", ".tsv")]


def cluster_config(user_bids):
    """The tiny config on its synthetic datasets and one variant: both runs share two cores, and
    the user's BIDS scans and a second variant add nothing to what SLURM is asked (the local
    run covers them)."""
    config = tiny_config(user_bids)
    return {**config, "datasets": {name: config["datasets"][name] for name in CLUSTER_DATASETS},
            "detector": {**config["detector"], "variants": {CLUSTER_VARIANT: config["detector"]["variants"][CLUSTER_VARIANT]}}}


@pytest.fixture(scope="session")
def cluster_run(request, tmp_path_factory, user_bids):
    """When the SLURM test is selected: a one-node SLURM cluster on this machine
    (tests/cluster/start_slurm.sh) and the tiny workflow submitted to it, in the background.
    The local run (:func:`tiny_run`) starts it first: its jobs spend most of their time queued
    and in status checks, so the local tests run meanwhile and the SLURM test only waits for it."""
    if not any(item.name == SLURM_TEST for item in request.session.items):
        yield None
        return
    state = tmp_path_factory.mktemp("slurm")
    started = subprocess.run(["bash", str(CLUSTER / "start_slurm.sh"), str(state)], capture_output=True, text=True, timeout=600)
    if started.returncode == 3:
        yield ClusterRun(skip=f"this machine cannot run a SLURM cluster: {started.stderr.strip()}")
        return
    cluster = ClusterRun(env=dict(os.environ))
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        # The profiles as a user runs them without accounting. The node has 2 CPUs: --cores 1 makes
        # every SLURM job (groups too) ask for one, so two run side by side. Trainings get one thread:
        # the job step sees the whole node (no CPU binding here) and would otherwise take the
        # profile's 4, down to 2, which also changes their floating-point sums from the local run's.
        # Status checks every 2 s, not 10: a chain of short jobs waits for each.
        cluster.run = start_snakemake(tmp_path_factory.mktemp("cluster"), cluster_config(user_bids),
                                      "--profile", str(REPO / "profiles/slurm"),
                                      "--workflow-profile", str(REPO / "profiles/slurm-noaccounting"), "--cores", "1",
                                      "--set-threads", "train_detector=1", "train_localizer=1",
                                      "--slurm-init-seconds-before-status-checks", "1",
                                      "--seconds-between-status-checks", "2", "--slurm-keep-successful-logs", env=cluster.env,
                                      targets=CLUSTER_TARGETS)
        yield cluster
    finally:
        if cluster.run is not None:
            cluster.run.stop()
        subprocess.run(["bash", str(CLUSTER / "stop_slurm.sh"), str(state)], timeout=120)


@pytest.fixture(scope="session")
def tiny_run(request, tmp_path_factory, user_bids, cluster_run):
    """The tiny workflow, run once locally; the SLURM run (:func:`cluster_run`) goes beside it,
    and the new-data runs (:mod:`tests.workflow.new_data`) start as soon as it is done."""
    workdir = tmp_path_factory.mktemp("run")
    config = tiny_config(user_bids)
    before = sorted(p.relative_to(user_bids) for p in user_bids.rglob("*"))
    result = snakemake(workdir, config)
    assert result.returncode == 0, result.stdout[-3000:]
    selected = {item.name for item in request.session.items}
    NEW_DATA_RUNS.update(start_new_data_runs(selected, workdir, config, user_bids, tmp_path_factory.mktemp))
    try:
        yield workdir, user_bids, before, config
    finally:
        for started in NEW_DATA_RUNS.values():
            started.run.stop()


NEW_DATA_RUNS: dict[str, NewDataRun] = {}  # test name -> its run, started by tiny_run


@pytest.fixture
def new_data_run(request, tiny_run) -> NewDataRun:
    """The new-data run of the requesting test, started by :func:`tiny_run`."""
    return NEW_DATA_RUNS[request.node.name]
