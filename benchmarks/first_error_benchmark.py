"""Time from `snakemake` to the first error for bad inputs (target: <= 10 s on 2 cores, and
before any preprocessing job starts).

Writes a two-subject dataset of clinical size (192 x 224 x 64 voxels, 1 x 1 x 2 mm), gives
it one defect per case, and runs the workflow on it with the default config:

    python benchmarks/first_error_benchmark.py --workdir /tmp/first_error
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cmbflow.io.nifti import save_volume  # noqa: E402

SHAPE = (192, 224, 64)
AFFINE = np.diag([-1.0, 1.0, 2.0, 1.0])
AFFINE[:3, 3] = [96, -112, -64]


def write_dataset(root: Path) -> None:
    rng = np.random.default_rng(0)
    grid = np.indices(SHAPE, dtype=np.float32)
    head = ((grid[0] - 96) / 80) ** 2 + ((grid[1] - 112) / 95) ** 2 + ((grid[2] - 32) / 30) ** 2 < 1
    for subject in ("01", "02"):
        anat = root / f"sub-{subject}" / "anat"
        save_volume(anat / f"sub-{subject}_part-mag_swi.nii.gz", (head * rng.uniform(300, 400, SHAPE)).astype(np.float32), AFFINE)
        save_volume(anat / f"sub-{subject}_part-phase_swi.nii.gz", rng.normal(0, 0.3, SHAPE).astype(np.float32), AFFINE)


CASES = {
    "missing phase": lambda root, config: (root / "sub-02/anat/sub-02_part-phase_swi.nii.gz").unlink(),
    "corrupt first magnitude": lambda root, config: (root / "sub-01/anat/sub-01_part-mag_swi.nii.gz").write_bytes(b"\0" * 500),
    "forced units contradict": lambda root, config: config["datasets"]["scans"].update(phase_units="scanner"),
    "config typo": lambda root, config: config.update(dataset=config.pop("datasets")),
    "non-BIDS subject label": lambda root, config: (root / "sub-02").rename(root / "sub-02_b"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, required=True)
    args = parser.parse_args()
    clean = args.workdir / "clean"
    if not clean.exists():
        write_dataset(clean)
    for name, defect in CASES.items():
        case = args.workdir / name.replace(" ", "_")
        shutil.rmtree(case, ignore_errors=True)
        shutil.copytree(clean, case / "bids")
        config = {"datasets": {"scans": {"bids_dir": str(case / "bids"), "role": "external"}}}
        defect(case / "bids", config)
        (case / "config.yaml").write_text(yaml.safe_dump(config))
        start = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(case / "work"),
                                    "--cores", "2", "--configfile", str(case / "config.yaml")],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        first_error, message = None, ""
        for line in process.stdout:  # the first line that reports the error, as a user sees it
            if first_error is None and ("rror" in line):
                first_error = time.perf_counter() - start
            if not message and (case.name in line and ("cmbflow input error" in line or "dataset" in line)
                                or line.startswith(("config", "cmbflow input error", "dataset", "  - "))):
                message = line.strip()
        process.wait()
        total = time.perf_counter() - start
        preprocessed = (case / "work/results/preproc").exists()
        print(f"{name:26s} exit {process.returncode}  first error {first_error or float('nan'):5.1f} s  exit after {total:5.1f} s  "
              f"preprocessing started: {preprocessed}\n    {message[:220]}")


if __name__ == "__main__":
    main()
