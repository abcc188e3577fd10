"""The tiny workflow through SLURM (snakemake-executor-plugin-slurm) on a real one-node cluster
that tests/cluster/start_slurm.sh starts on this machine, compared with the local run."""

from __future__ import annotations

import os
import re
import subprocess
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from tests.workflow.tiny import REPO, snakemake

pytestmark = pytest.mark.workflow

CLUSTER = REPO / "tests/cluster"
# Compared with the local run: every table of the run (models are compared through their outputs).
COMPARED = ("inputs/*/*.tsv", "candidates/*/*/candidates.tsv", "census/*/*/*.tsv", "evaluation/*/*/summary.tsv",
            "evaluation/*.tsv")


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    state = tmp_path_factory.mktemp("slurm")
    started = subprocess.run(["bash", str(CLUSTER / "start_slurm.sh"), str(state)], capture_output=True, text=True, timeout=600)
    if started.returncode == 3:
        pytest.skip(f"this machine cannot run a SLURM cluster: {started.stderr.strip()}")
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield dict(os.environ)
    finally:
        subprocess.run(["bash", str(CLUSTER / "stop_slurm.sh"), str(state)], timeout=120)


def _tables(results: Path) -> dict[str, Path]:
    return {str(path.relative_to(results)): path for pattern in COMPARED for path in sorted(results.glob(pattern))}


def test_tiny_workflow_through_slurm_equals_the_local_run(slurm, tiny_run, tmp_path):
    local, _, _, config = tiny_run
    workdir = tmp_path / "cluster"
    # The profiles as a user runs them without accounting. The node has 2 CPUs: --cores 1 makes every
    # SLURM job (groups too) ask for one, so two run side by side. Trainings get one thread: the job
    # step sees the whole node (no CPU binding here) and would otherwise take the profile's 4, down
    # to 2, which also changes their floating-point sums from the local run's.
    result = snakemake(workdir, config, "--profile", str(REPO / "profiles/slurm"),
                       "--workflow-profile", str(REPO / "profiles/slurm-noaccounting"), "--cores", "1",
                       "--set-threads", "train_detector=1", "train_localizer=1",
                       "--slurm-init-seconds-before-status-checks", "1", "--slurm-keep-successful-logs",
                       env=slurm, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:]
    submitted = set(re.findall(r"submitted with SLURM jobid (\d+)", result.stdout))
    # SLURM knows every submission as completed (MinJobAge keeps finished jobs in squeue) ...
    states = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i %T"], capture_output=True, text=True, env=slurm,
                            check=True).stdout.split("\n")
    state_of = dict(line.split() for line in states if line.strip())
    assert submitted and all(state_of.get(job) == "COMPLETED" for job in submitted), {job: state_of.get(job) for job in submitted}
    # ... each wrote its own SLURM log ...
    logs = {path.stem: path for path in (workdir / ".snakemake/slurm_logs").rglob("*.log")}
    assert submitted <= set(logs)
    # ... and every job of the local run ran inside one of them (grouped jobs share a submission):
    # the job step's Snakemake announces each job it runs as a `localrule` (`localcheckpoint`). The
    # plan is the local run's, from its first log: Snakemake's "Job stats" at the start list only
    # what is known before the split checkpoint has run.
    announced = re.compile(r"^local(?:rule|checkpoint) (\w+):", re.M)
    planned = Counter(announced.findall(min((local / ".snakemake/log").glob("*.snakemake.log")).read_text()))
    del planned["all"]
    ran = Counter(announced.findall("".join(logs[job].read_text() for job in submitted)))
    assert ran == planned and sum(planned.values()) > 40
    assert len(submitted) < sum(planned.values())  # the profile's groups were used
    local_tables, cluster_tables = _tables(local / "results"), _tables(workdir / "results")
    assert sorted(cluster_tables) == sorted(local_tables) and len(local_tables) > 15
    for name, path in local_tables.items():
        expected = pd.read_csv(path, sep="\t", dtype={"subject": str, "key": str})
        got = pd.read_csv(cluster_tables[name], sep="\t", dtype={"subject": str, "key": str})
        pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-4, atol=1e-4, obj=name)
