"""Benchmark of the synthetic generator: seconds and peak memory per subject, per site.

Usage:  python benchmarks/synth_benchmark.py [--config config.yaml] [--subjects 3]
The whole default cohort through the DAG is measured with:
        rm -rf results && /usr/bin/time -v snakemake --cores 2
"""

from __future__ import annotations

import argparse
import resource
import time

import yaml

from cmbflow.synth.cohort import make_simulator, subject_rng
from cmbflow.sites import SiteParams


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--subjects", type=int, default=3)
    args = parser.parse_args()
    synth = yaml.safe_load(open(args.config))["synth"]
    start = time.perf_counter()
    simulator = make_simulator(**yaml.safe_load(open(args.config)).get("atlas", {}))
    print(f"template + atlas + tissue maps: {time.perf_counter() - start:.1f} s")
    for name, values in synth["sites"].items():
        site = SiteParams.from_config(name, values)
        times = []
        for number in range(args.subjects):
            start = time.perf_counter()
            simulator.simulate(site, subject_rng(synth["seed"], name, f"{number + 1:03d}"))
            times.append(time.perf_counter() - start)
        print(f"site {name}: grid {site.shape} at {site.voxel_mm} mm, {sum(times) / len(times):.2f} s per subject "
              f"(min {min(times):.2f}, max {max(times):.2f}, n={len(times)})")
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"peak resident memory of this process: {peak_gb:.2f} GB")


if __name__ == "__main__":
    main()
