"""Seed spread: how much of a detector's score is the draw of its training run?

Retrains one detector variant of a finished default run with other training seeds
(``detector.training.seed``: the network's initial weights, the patch stream and which training
subjects are held back for validation and the operating point), on that run's preprocessed cohort
and split, and scores every seed on the run's annotated datasets. Nothing else is recomputed: each
seed works in a copy of the run's ``results/`` under ``--workdir`` (the run itself is only read).
``--config`` adds config files to every seed (a training option against the default, at several
seeds). Seeds train side by side, one core each (``--jobs``); docs/results.md, "Seed spread":

    python benchmarks/seed_benchmark.py --run /tmp/dag --workdir /tmp/seeds --seeds 1 2 3 --jobs 2 [--config extra.yaml]

An inference option is checked on models already trained, without training: ``--models-from`` names
a former ``--workdir`` whose ``seed-N`` folders hold them (seed 0, the default: the run's own), and
the operating point is chosen again with the option (docs/results.md, "Test-time flips at five seeds"):

    python benchmarks/seed_benchmark.py --run /tmp/dag --workdir /tmp/tta --seeds 0 1 2 3 4 --models-from /tmp/seeds --config tta.yaml

Writes ``<workdir>/seeds.tsv`` (one row per seed and dataset, after filtering, the run's own seed
included) and prints it with the mean and standard deviation over seeds. On the synthetic sites it
also counts the false positives scoring at least 0.25 (``fp_025``) and those of them within 3 mm of
a vein of the generator's truth (``fp_025_vein``: ``desc-mimics_markers.tsv``), over all subjects.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
COLUMNS = ["cpm", "sensitivity", "fp_per_subject", "count_mae"]  # models_by_site.tsv, after filtering
FP_SCORE, VEIN_MM = 0.25, 3.0  # false positives counted from this score; a vein's marker within this distance
# Model-independent outputs a seed reuses; everything downstream of the detector is remade.
REUSED = ("inputs", "synth", "preproc", "atlas", "models/localizer", "regions")


def run_seed(run: Path, folder: Path, seed: int, configs: list[Path], variant: str, models_from: Path | None = None,
            own_seed: int = 0) -> pd.DataFrame:
    """Retrain ``variant`` with ``seed`` in ``folder`` (a copy of the run's model-independent
    results) and return its ``models_by_site.tsv`` rows after filtering. With ``models_from``
    (a former workdir), its ``seed-<seed>`` model is copied instead (the run's own for
    ``own_seed``) and only the operating point and what follows are remade. A folder that holds
    the rows already is read, not remade (remove it to run again)."""
    if (folder / "results/evaluation/models_by_site.tsv").exists():
        return scored(folder, variant).assign(seed=seed)
    parts = {part: run / "results" / part for part in REUSED}
    if models_from is not None:
        trained = run if seed == own_seed else models_from / f"seed-{seed}"
        parts[f"models/{variant}"] = trained / "results/models" / variant
    for part, source in parts.items():
        if source.exists() and not (folder / "results" / part).exists():
            shutil.copytree(source, folder / "results" / part)  # copies keep the mtimes: nothing upstream reruns
    if models_from is not None:  # newer than the run's inputs, or Snakemake would retrain them (a run made after the models)
        for path in (folder / "results/models" / variant).rglob("*"):
            os.utime(path)
    overlay = folder / "seed.yaml"
    overlay.write_text(yaml.safe_dump({"detector": {"training": {"seed": seed}}}))
    remade = "choose_operating_point" if models_from is not None else "train_detector"
    command = [sys.executable, "-m", "snakemake", "results/evaluation/models_by_site.tsv", "-s", str(REPO / "Snakefile"),
               "-d", str(folder), "--configfile", str(REPO / "config.yaml"), *map(str, configs), str(overlay),
               "--cores", "1", "--rerun-triggers", "mtime", "input", "--forcerun", remade, "--quiet", "rules"]
    with open(folder / "snakemake.log", "w") as log:
        subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT)
    return scored(folder, variant).assign(seed=seed)


def scored(folder: Path, variant: str) -> pd.DataFrame:
    """A run's rows of ``variant`` after filtering from its ``models_by_site.tsv``, with the
    false-positive counts of :func:`vein_false_positives`."""
    table = pd.read_csv(folder / "results/evaluation/models_by_site.tsv", sep="\t")
    table = table[(table["variant"] == variant) & (table["filter"] == "after")]
    counts = [vein_false_positives(folder, variant, dataset) for dataset in table["dataset"]]
    return table.assign(fp_025=[c[0] for c in counts], fp_025_vein=[c[1] for c in counts])


def vein_false_positives(folder: Path, variant: str, dataset: str) -> tuple[int, int]:
    """Kept false positives of ``variant`` on a synthetic ``dataset`` scoring at least ``FP_SCORE``,
    and how many of them lie within ``VEIN_MM`` (world mm) of a vein marker of the generator's truth
    (both -1 where the dataset has no such truth)."""
    truth = folder / f"results/synth/site-{dataset.removeprefix('synth_')}/derivatives/synth_truth"
    if not truth.exists():
        return -1, -1
    matched = pd.read_csv(folder / f"results/evaluation/{variant}/{dataset}/matched.tsv", sep="\t", dtype={"subject": str})
    fps = matched[(matched["filter"] == "after") & matched["kept"] & (matched["outcome"] == "fp") & (matched["score"] >= FP_SCORE)]
    near = 0
    for subject, group in fps.groupby("subject"):
        markers = pd.read_csv(truth / f"sub-{subject}/anat/sub-{subject}_desc-mimics_markers.tsv", sep="\t")
        veins = markers.loc[markers["kind"].str.endswith("vein"), ["x", "y", "z"]].to_numpy(float)
        if len(veins):
            distance = np.linalg.norm(group[["x", "y", "z"]].to_numpy(float)[:, None] - veins[None], axis=2).min(axis=1)
            near += int((distance <= VEIN_MM).sum())
    return len(fps), near


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="folder of a finished default run (holds results/)")
    parser.add_argument("--workdir", type=Path, required=True, help="where the seeds' runs are written")
    parser.add_argument("--seeds", type=int, nargs="+", required=True, help="training seeds to add")
    parser.add_argument("--config", type=Path, nargs="*", default=[], help="config files added to every seed")
    parser.add_argument("--variant", default="rpn_ffm_hspl")
    parser.add_argument("--jobs", type=int, default=2, help="seeds trained side by side (one core each)")
    parser.add_argument("--models-from", type=Path, help="a former --workdir: score its seeds' trained models, no training")
    args = parser.parse_args()
    run, work = args.run.resolve(), args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    configs = [path.resolve() for path in args.config]
    own = yaml.safe_load((REPO / "config.yaml").read_text())["detector"]["training"]["seed"]
    models_from = args.models_from.resolve() if args.models_from else None
    with ThreadPoolExecutor(args.jobs) as pool:
        tables = list(pool.map(lambda seed: run_seed(run, work / f"seed-{seed}", seed, configs, args.variant, models_from, own),
                               args.seeds))
    if not configs and own not in args.seeds:  # the run's own seed is a draw like the others (once: a listed one was remade)
        tables.insert(0, scored(run, args.variant).assign(seed=own))
    table = pd.concat(tables, ignore_index=True)[["seed", "dataset", *COLUMNS, "fp_025", "fp_025_vein"]]
    table.to_csv(work / "seeds.tsv", sep="\t", index=False)
    print(table.to_string(index=False))
    print(table.groupby("dataset")[COLUMNS].agg(["mean", "std"]).round(3).to_string())


if __name__ == "__main__":
    main()
