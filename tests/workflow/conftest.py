"""Session fixtures of the workflow tests: the user's dataset, one local run of the tiny config
and the same run through SLURM, started beside it."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.workflow.tiny import REPO, TINY_SITE, snakemake, snakemake_command, tiny_config

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
    workdir: Path | None = None
    process: subprocess.Popen | None = None
    output: Path | None = None
    env: dict | None = None
    skip: str = ""  # why this machine cannot run the cluster

    def wait(self, timeout: int) -> tuple[int, str]:
        """The run's exit status and output, once it has ended."""
        returncode = self.process.wait(timeout=timeout)
        return returncode, self.output.read_text()


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
    run = ClusterRun(env=dict(os.environ))
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        run.workdir = tmp_path_factory.mktemp("cluster")
        # The profiles as a user runs them without accounting. The node has 2 CPUs: --cores 1 makes
        # every SLURM job (groups too) ask for one, so two run side by side. Trainings get one thread:
        # the job step sees the whole node (no CPU binding here) and would otherwise take the
        # profile's 4, down to 2, which also changes their floating-point sums from the local run's.
        # Status checks every 2 s, not 10: a chain of short jobs waits for each.
        command = snakemake_command(run.workdir, tiny_config(user_bids), "--profile", str(REPO / "profiles/slurm"),
                                    "--workflow-profile", str(REPO / "profiles/slurm-noaccounting"), "--cores", "1",
                                    "--set-threads", "train_detector=1", "train_localizer=1",
                                    "--slurm-init-seconds-before-status-checks", "1",
                                    "--seconds-between-status-checks", "2", "--slurm-keep-successful-logs")
        run.output = run.workdir / "snakemake.out"
        with run.output.open("w") as output:
            run.process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, text=True, env=run.env)
        yield run
    finally:
        if run.process is not None and run.process.poll() is None:
            run.process.kill()
            run.process.wait()
        subprocess.run(["bash", str(CLUSTER / "stop_slurm.sh"), str(state)], timeout=120)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, user_bids, cluster_run):
    workdir = tmp_path_factory.mktemp("run")
    config = tiny_config(user_bids)
    before = sorted(p.relative_to(user_bids) for p in user_bids.rglob("*"))
    result = snakemake(workdir, config)
    assert result.returncode == 0, result.stdout[-3000:]
    return workdir, user_bids, before, config
