"""The tiny workflow through SLURM (snakemake-executor-plugin-slurm) on a real one-node cluster
that tests/cluster/start_slurm.sh starts on this machine, compared with the local run."""

from __future__ import annotations

import os
import re
import subprocess
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
    # The cluster profile without accounting (squeue), first status check after 1 s; the node has 2 CPUs.
    result = snakemake(workdir, config, "--workflow-profile", str(REPO / "profiles/slurm-noaccounting"), "--jobs", "4",
                       "--slurm-init-seconds-before-status-checks", "1", "--slurm-keep-successful-logs",
                       "--set-threads", "train_detector=2",
                       "train_localizer=2", env=slurm, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:]
    submitted = re.findall(r"submitted with SLURM jobid (\d+)", result.stdout)
    executed = int(re.search(r"^total\s+(\d+)", result.stdout, re.M).group(1)) - 1  # rule `all` runs in Snakemake itself
    assert len(set(submitted)) == executed > 20
    # SLURM knows every one of them as completed (MinJobAge keeps finished jobs for 5 min) ...
    states = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i %T"], capture_output=True, text=True, env=slurm,
                            check=True).stdout.split("\n")
    state_of = dict(line.split() for line in states if line.strip())
    assert all(state_of.get(job) == "COMPLETED" for job in submitted), {job: state_of.get(job) for job in submitted}
    # ... and each wrote its own SLURM log
    logs = {path.stem for path in (workdir / ".snakemake/slurm_logs").rglob("*.log")}
    assert set(submitted) <= logs
    local_tables, cluster_tables = _tables(local / "results"), _tables(workdir / "results")
    assert sorted(cluster_tables) == sorted(local_tables) and len(local_tables) > 15
    for name, path in local_tables.items():
        expected = pd.read_csv(path, sep="\t", dtype={"subject": str, "key": str})
        got = pd.read_csv(cluster_tables[name], sep="\t", dtype={"subject": str, "key": str})
        pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-4, atol=1e-4, obj=name)
