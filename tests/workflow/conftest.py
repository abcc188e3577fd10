"""Session fixtures of the workflow tests: the user's dataset and one local run of the tiny config."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from tests.workflow.tiny import TINY_SITE, snakemake, tiny_config


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


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, user_bids):
    workdir = tmp_path_factory.mktemp("run")
    config = tiny_config(user_bids)
    before = sorted(p.relative_to(user_bids) for p in user_bids.rglob("*"))
    result = snakemake(workdir, config)
    assert result.returncode == 0, result.stdout[-3000:]
    return workdir, user_bids, before, config
