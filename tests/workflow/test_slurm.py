"""The tiny workflow through SLURM (snakemake-executor-plugin-slurm) on a real one-node cluster
that tests/cluster/start_slurm.sh starts on this machine (the fixture ``cluster_run``, beside the
local run), compared with the local run."""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest


# one worker runs them all: they share the tiny run (pyproject.toml)
pytestmark = [pytest.mark.workflow, pytest.mark.xdist_group("workflow")]

# Compared with the local run: every table of the run (models are compared through their outputs).
COMPARED = ("inputs/*/*.tsv", "candidates/*/*/candidates.tsv", "census/*/*/*.tsv", "evaluation/*/*/summary.tsv",
            "evaluation/*.tsv")


def _tables(results: Path) -> dict[str, Path]:
    return {str(path.relative_to(results)): path for pattern in COMPARED for path in sorted(results.glob(pattern))}


# What the cluster run leaves out of the local run's config (conftest cluster_config): a dataset,
# a variant, and with it the rules and tables that compare two variants.
LEFT_OUT = {"dataset": "user_scans", "variant": "rpn_ffm_hspl"}
TWO_VARIANT_RULES = {"paired_comparison", "feature_levels"}
FIGURE_RULES = {"synth_overview", "registration_quality", "example_figures", "site_figures", "feature_embedding",
                "export_census", "subject_reports"}  # it is asked for the tables (conftest CLUSTER_TARGETS)
TWO_VARIANT_TABLES = {"evaluation/paired_differences.tsv"}


def test_tiny_workflow_through_slurm_equals_the_local_run(cluster_run, tiny_run):
    if cluster_run.skip:
        pytest.skip(cluster_run.skip)
    local, _, _, _ = tiny_run
    workdir, slurm = cluster_run.run.workdir, cluster_run.env
    result = cluster_run.run.wait(timeout=900)
    output = result.stdout
    assert result.returncode == 0, output[-4000:]
    submitted = set(re.findall(r"submitted with SLURM jobid (\d+)", output))
    # SLURM knows every submission as completed (MinJobAge keeps finished jobs in squeue) ...
    states = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i %T"], capture_output=True, text=True, env=slurm,
                            check=True).stdout.split("\n")
    state_of = dict(line.split() for line in states if line.strip())
    assert submitted and all(state_of.get(job) == "COMPLETED" for job in submitted), {job: state_of.get(job) for job in submitted}
    # ... each wrote its own SLURM log ...
    logs = {path.stem: path for path in (workdir / ".snakemake/slurm_logs").rglob("*.log")}
    assert submitted <= set(logs)
    # ... and every job of the local run that the cluster run asks for ran inside one of them
    # (grouped jobs share a submission): the job step's Snakemake announces each job it runs as a
    # `localrule` (`localcheckpoint`). The plan is the local run's, from its first log, less the
    # jobs of what the cluster run leaves out: Snakemake's "Job stats" at the start list only what
    # is known before the split checkpoint has run.
    block = re.compile(r"^local(?:rule|checkpoint) (\w+):\n((?:    .*\n)*)", re.M)
    local_log = min((local / ".snakemake/log").glob("*.snakemake.log")).read_text()
    planned = Counter(rule for rule, body in block.findall(local_log) if rule not in TWO_VARIANT_RULES | FIGURE_RULES
                      and not any(re.search(rf"wildcards: .*\b{key}={value}\b", body) for key, value in LEFT_OUT.items()))
    del planned["all"]
    ran = Counter(rule for rule, _ in block.findall("".join(logs[job].read_text() for job in submitted)))
    assert ran == planned and sum(planned.values()) > 20 and planned["preprocess_subject"] == 3 and planned["train_detector"] == 1
    assert len(submitted) < sum(planned.values())  # the profile's groups were used
    # ... and its tables are the local run's, less the left-out files and rows
    local_tables, cluster_tables = _tables(local / "results"), _tables(workdir / "results")
    expected_names = sorted(name for name in local_tables
                            if name not in TWO_VARIANT_TABLES and not any(value in name for value in LEFT_OUT.values()))
    assert sorted(cluster_tables) == expected_names and len(expected_names) > 8
    for name, path in cluster_tables.items():
        expected = pd.read_csv(local_tables[name], sep="\t", dtype={"subject": str, "key": str})
        for column, value in LEFT_OUT.items():  # the tables across datasets and variants
            if column in expected.columns:
                expected = expected[expected[column] != value].reset_index(drop=True)
        got = pd.read_csv(path, sep="\t", dtype={"subject": str, "key": str})
        assert len(got), name
        pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-4, atol=1e-4, obj=name)
