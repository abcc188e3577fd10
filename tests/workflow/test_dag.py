"""The Snakemake DAG end to end on a tiny config: synthetic site + a user BIDS dataset."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
TINY_SITE = {"n_subjects": 3, "voxel_mm": [3.0, 3.0, 4.0], "sim_voxel_mm": 2.0, "medullary_veins": 5, "pial_veins": 5,
             "cmb_free_fraction": 0.0, "cmb_diameter_mm": [3.0, 8.0]}

pytestmark = pytest.mark.workflow


def snakemake(workdir: Path, config: dict, *extra: str) -> subprocess.CompletedProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    configfile = workdir / "tiny.yaml"
    configfile.write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--cores", "2",
               "--configfile", str(configfile), *extra]
    return subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)


@pytest.fixture(scope="module")
def user_bids(tmp_path_factory):
    """A user's dataset: two subjects written by `cmbflow synth` (oblique LAS, scanner phase)."""
    out = tmp_path_factory.mktemp("user") / "bids"
    config = tmp_path_factory.mktemp("cfg") / "synth.yaml"
    config.write_text(yaml.safe_dump({"synth": {"seed": 3, "sites": {"scan": dict(TINY_SITE, orientation="LAS", oblique_deg=10.0,
                                                                                    phase_storage="scanner", n_subjects=2)}}}))
    subprocess.run([sys.executable, "-m", "cmbflow.cli", "synth", "--site", "scan", "--out", str(out), "--config", str(config),
                    "--no-progress"], check=True, timeout=300)
    return out


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, user_bids):
    workdir = tmp_path_factory.mktemp("run")
    config = {"datasets": {"tiny_internal": {"synthetic_site": "tiny", "role": "internal"},
                           "user_scans": {"bids_dir": str(user_bids), "role": "external"}},
              "synth": {"seed": 11, "template_site": "tiny", "sites": {"tiny": TINY_SITE}}}
    before = sorted(p.relative_to(user_bids) for p in user_bids.rglob("*"))
    result = snakemake(workdir, config)
    assert result.returncode == 0, result.stdout[-3000:]
    return workdir, user_bids, before, config


def test_dag_writes_manifests_split_template_and_qc(tiny_run):
    workdir, _, _, _ = tiny_run
    results = workdir / "results"
    internal = pd.read_csv(results / "inputs/tiny_internal/manifest.tsv", sep="\t", dtype={"key": str})
    participants = pd.read_csv(results / "synth/site-tiny/participants.tsv", sep="\t")
    assert list(internal["key"]) == ["001", "002", "003"]
    assert list(internal["n_cmb"]) == list(participants["n_cmb"])  # mask instances == markers written
    assert internal["n_cmb"].sum() >= 1
    split = pd.read_csv(results / "inputs/tiny_internal/split.tsv", sep="\t", dtype={"key": str})
    assert sorted(split["split"]) == ["test", "train", "train"]
    assert (results / "qc/synth_tiny/overview.png").stat().st_size > 10_000
    for name in ("part-mag_swi", "part-phase_swi", "desc-brain_mask", "desc-mars_dseg"):
        assert (results / f"synth/template/tpl-synth_{name}.nii.gz").exists()
    assert not (results / "synth/site-internal").exists()  # the user's datasets replaced the default cohort


def test_user_dataset_validated_in_place_and_untouched(tiny_run):
    workdir, user_bids, before, _ = tiny_run
    manifest = pd.read_csv(workdir / "results/inputs/user_scans/manifest.tsv", sep="\t", dtype={"key": str})
    assert list(manifest["key"]) == ["001", "002"]
    assert manifest["phase_units"].str.contains("scanner units -4096..4095").all()
    assert set(manifest["orientation"]) == {"LAS"}
    assert sorted(p.relative_to(user_bids) for p in user_bids.rglob("*")) == before


def test_rerun_has_nothing_to_do(tiny_run):
    workdir, _, _, config = tiny_run
    result = snakemake(workdir, config, "-n")
    assert result.returncode == 0 and "Nothing to be done" in result.stdout


def test_bad_input_fails_before_heavy_work_naming_the_file(tmp_path, user_bids):
    broken = tmp_path / "broken"
    shutil.copytree(user_bids, broken)
    phase = next(broken.rglob("sub-002_part-phase_swi.nii.gz"))
    phase.unlink()
    config = {"datasets": {"broken": {"bids_dir": str(broken), "role": "external"}}}
    result = snakemake(tmp_path / "work", config)
    assert result.returncode != 0
    assert "no phase image" in result.stdout and str(phase) in result.stdout
    assert not (tmp_path / "work/results/inputs/broken/manifest.tsv").exists()


def test_missing_bids_dir_is_a_clear_error_at_dag_build(tmp_path):
    result = snakemake(tmp_path / "work", {"datasets": {"gone": {"bids_dir": str(tmp_path / "nope"), "role": "external"}}}, "-n")
    assert result.returncode != 0 and "bids_dir" in result.stdout and "does not exist" in result.stdout


def test_schema_rejects_bad_config(tmp_path):
    result = snakemake(tmp_path / "work", {"datasets": {"d": {"bids_dir": "x", "role": "training"}}}, "-n")
    assert result.returncode != 0 and "training" in result.stdout


def test_lint_is_clean(tiny_run):
    workdir, _, _, config = tiny_run
    result = snakemake(workdir, config, "--lint")
    assert result.returncode == 0, result.stdout
    assert "Congratulations" in result.stdout
