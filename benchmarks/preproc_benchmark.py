"""Benchmark of per-subject preprocessing (N4, registration, resampling): seconds and peak
memory for one subject of each default synthetic site, in a fresh process per subject.

Needs the synthetic cohort and template (``snakemake --cores 2`` writes them), then:
    python benchmarks/preproc_benchmark.py [--threads 2] [--subject 001] [--dataset synth_internal]
One subject under /usr/bin/time (the acceptance measurement):
    /usr/bin/time -v python benchmarks/preproc_benchmark.py --dataset synth_internal
A job of the DAG is measured the same way by Snakemake (results/benchmarks/preproc/).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time

import yaml

CHILD = """
import json, sys, time
from cmbflow.preprocessing.antsimage import set_threads
set_threads(int(sys.argv[1]))
from cmbflow import paths
from cmbflow.config import registration_template, target_spacing
from cmbflow.preprocessing.subject import PreprocSettings, TemplateFiles, preprocess_subject
config, dataset, key, out = json.loads(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
settings = PreprocSettings.from_config(config.get("preprocessing", {}), target_spacing(config))
site = config["datasets"][dataset]["synthetic_site"]
files = {kind: paths.synth_subject_files(site, key)[kind] for kind in ("magnitude", "phase", "mask", "markers")}
outputs = {k: f"{out}/{v.rsplit('/', 1)[1]}" for k, v in paths.preproc_subject_files(dataset, key).items()}
result = preprocess_subject(key, files, config["datasets"][dataset], TemplateFiles(**registration_template(config)),
                            settings, outputs, paths.synth_subject_files(site, key)["regions"])
print(json.dumps(result.quality))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--subject", default="001")
    parser.add_argument("--dataset", action="append", help="dataset(s) of the config to run (default: all)")
    args = parser.parse_args()
    config = yaml.safe_load(open(args.config))
    for dataset in args.dataset or config["datasets"]:
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            child = subprocess.run([sys.executable, "-c", CHILD, str(args.threads), json.dumps(config), dataset, args.subject, out],
                                   capture_output=True, text=True, check=True)
            wall = time.perf_counter() - start
        peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2  # largest child so far
        quality = json.loads(child.stdout.strip().splitlines()[-1])
        print(f"{dataset} sub-{args.subject}: {wall:.1f} s wall with {args.threads} thread(s) (registration {quality['registration_s']} s), "
              f"peak RSS so far {peak_gb:.2f} GB; Dice lobar {quality['dice_lobar']:.3f} deep {quality['dice_deep']:.3f} "
              f"infratentorial {quality['dice_infratentorial']:.3f}")


if __name__ == "__main__":
    main()
