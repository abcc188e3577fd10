"""The tiny end-to-end configuration shared by the workflow tests (local and SLURM runs)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
# 1 mm simulation grid: coarser simulated anatomy is too blocky to register like a real head.
TINY_SITE = {"n_subjects": 3, "voxel_mm": [2.0, 2.0, 3.0], "sim_voxel_mm": 1.0, "medullary_veins": 5, "pial_veins": 5,
             "cmb_free_fraction": 0.0, "cmb_diameter_mm": [3.0, 8.0]}

# Quicker registration for 2 x 2 x 3 mm subjects: SyN [20, 10] at 3 mm took 14 s a subject against
# 20 s for [30, 20], region Dice within 0.006 (lobar 0.938-0.940, deep 0.843-0.862, infratentorial
# 0.921-0.931) and every marker in its region; 4 mm lost a marker's region (0.86).
TINY_PREPROCESSING = {"registration": {"spacing_mm": 3.0, "syn_iterations": [20, 10]}}

# A detector small enough to train in seconds; two variants (config, not classes).
TINY_DETECTOR = {
    "variants": {"rpn": {"fuse_levels": False, "hspl": False}, "rpn_ffm_hspl": {"fuse_levels": True, "hspl": True}},
    "network": {"channels": [4, 8, 8, 16], "feature_dim": 8},
    # float32: bfloat16 on maps this small is neither reproducible nor always finite (config.yaml, cpu_bfloat16)
    "training": {"patch_size": [32, 32, 16], "batch_size": 2, "iterations": 4, "validation_every": 2, "checkpoint_every": 2,
                 "validation_patches": 2, "cpu_bfloat16": False},
    "inference": {"roi_size": [64, 64, -1], "probability_maps": True, "max_candidates": 20, "score_threshold": 0.0},
    "operating_point": {"background_ranks": [5, 15]},  # within the 20 candidates a subject keeps here
}

# A localizer that trains in seconds (no validation: two training subjects).
TINY_LOCALIZER = {"channels": [4, 8, 16], "strides": [2, 2], "patch_size": [32, 32, 16], "iterations": 4,
                  "validation_every": 2, "roi_size": [64, 64, -1]}

def snakemake_command(workdir: Path, config: dict, *extra: str, override: dict | None = None,
                      targets: list[str] | None = None) -> list[str]:
    """The command that runs the workflow with ``config`` (and a second configfile ``override``,
    merged over it) in ``workdir``, for ``targets`` (default: rule all); writes the config files there."""
    workdir.mkdir(parents=True, exist_ok=True)
    configfiles = [workdir / "tiny.yaml"]
    configfiles[0].write_text(yaml.safe_dump(config))
    if override is not None:
        configfiles.append(workdir / "override.yaml")
        configfiles[1].write_text(yaml.safe_dump(override))
    return [sys.executable, "-m", "snakemake", *(targets or []), "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--cores", "2",
            "--configfile", *map(str, configfiles), *extra]


def snakemake(workdir: Path, config: dict, *extra: str, override: dict | None = None, env: dict | None = None,
              timeout: int = 1200, targets: list[str] | None = None) -> subprocess.CompletedProcess:
    """Run the workflow (:func:`snakemake_command`) and wait for it; stdout and stderr together."""
    return subprocess.run(snakemake_command(workdir, config, *extra, override=override, targets=targets), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout, env=env)


@dataclass
class BackgroundRun:
    """A workflow run started with :func:`start_snakemake`; its output goes to a file."""
    workdir: Path
    process: subprocess.Popen
    output: Path

    def wait(self, timeout: int = 1200) -> subprocess.CompletedProcess:
        """The finished run, as :func:`snakemake` returns it."""
        returncode = self.process.wait(timeout=timeout)
        return subprocess.CompletedProcess(self.process.args, returncode, self.output.read_text())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def start_snakemake(workdir: Path, config: dict, *extra: str, override: dict | None = None,
                    env: dict | None = None, targets: list[str] | None = None) -> BackgroundRun:
    """Start :func:`snakemake` without waiting: runs whose tests only read their results go side
    by side (most of a tiny run is process start-up and chains of one-core jobs)."""
    command = snakemake_command(workdir, config, *extra, override=override, targets=targets)
    output = workdir / "snakemake.out"
    with output.open("w") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, text=True, env=env)
    return BackgroundRun(workdir, process, output)


def tiny_config(user_bids: Path) -> dict:
    """A synthetic internal site (two subjects: one trains, one is scored), a training-only
    site (one subject, as the default cohort's randomized one) and the user's BIDS dataset
    (oblique LAS, scanner phase)."""
    return {"datasets": {"tiny_internal": {"synthetic_site": "tiny", "role": "internal"},
                         "tiny_train": {"synthetic_site": "tinytrain", "role": "train"},
                         "user_scans": {"bids_dir": str(user_bids), "role": "external", "phase_sign": -1}},
            "synth": {"seed": 11, "template_site": "tiny",
                      "sites": {"tiny": dict(TINY_SITE, n_subjects=2), "tinytrain": dict(TINY_SITE, n_subjects=1)}},
            "preprocessing": TINY_PREPROCESSING, "detector": TINY_DETECTOR, "localizer": TINY_LOCALIZER,
            "census": {"score_threshold": 0.0},
            "evaluation": {"bootstrap": 100}}  # the bands and intervals of a few subjects: 100 replicates do
