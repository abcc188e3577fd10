"""Time of a whole workflow run, and where it goes.

Runs ``snakemake --cores N`` (default: the default config from scratch in a scratch copy of
nothing but the repository) and reports the wall time, then sums the per-job benchmark files
Snakemake wrote (``results/benchmarks/<stage>/``) per stage: job count, seconds, peak memory.

    python benchmarks/dag_benchmark.py --workdir /tmp/dag --cores 2          # run, then summarise
    python benchmarks/dag_benchmark.py --workdir . --summary-only             # summarise an existing run

Job seconds add up to more than the wall time where jobs ran side by side.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]


def summarise(workdir: Path) -> pd.DataFrame:
    """Per stage (folder under results/benchmarks/): jobs, summed seconds, largest max_rss (MB)."""
    rows = []
    for path in sorted((workdir / "results/benchmarks").glob("*/*.tsv")):
        table = pd.read_csv(path, sep="\t")
        rows.append({"stage": path.parent.name, "job": path.stem, "s": float(table["s"].iloc[-1]),
                     "max_rss_mb": float(pd.to_numeric(table["max_rss"], errors="coerce").iloc[-1])})
    jobs = pd.DataFrame(rows)
    if jobs.empty:
        return jobs
    return jobs.groupby("stage").agg(jobs=("job", "size"), seconds=("s", "sum"), max_rss_mb=("max_rss_mb", "max")).reset_index()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--summary-only", action="store_true")
    parser.add_argument("snakemake_args", nargs="*", help="extra snakemake arguments (after --)")
    args = parser.parse_args()
    if not args.summary_only:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(args.workdir),
                        "--cores", str(args.cores), "--quiet", "rules", *args.snakemake_args], check=True)
        print(f"wall time: {time.perf_counter() - start:.0f} s on {args.cores} cores")
    print(summarise(args.workdir).to_string(index=False))


if __name__ == "__main__":
    main()
