"""Raw-phase twins: does a site score the same when its phase comes raw (background field,
wraps) instead of high-pass filtered? Issue 17 asks for a CPM within 0.03 of the filtered twin.

Needs a finished default run (its trained models and its synthetic cohort). Writes, under
``--workdir``, raw-phase twins of the internal site's *test* subjects (``draws_of``: the same
anatomy, lesions and noise) and of the whole external site, as BIDS folders of links beside
their filtered originals, scores all of them with the run's models (``models:``, nothing is
trained) and prints the paired CPM table after filtering:

    python benchmarks/phase_twin_benchmark.py --run /tmp/dag --workdir /tmp/twins --cores 2
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
MODELS = ("rpn", "rpn_ffm", "rpn_ffm_hspl", "localizer")


def snakemake(workdir: Path, config: Path, cores: int, *targets: str) -> None:
    subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir), *targets,
                    "--cores", str(cores), "--configfile", str(config), "--quiet", "rules"], check=True)


def linked_bids(root: Path, source: Path, subjects: list[str]) -> Path:
    """A BIDS folder of links to ``subjects`` of ``source`` (images and CMB labels)."""
    (root / "derivatives/cmb_labels").mkdir(parents=True, exist_ok=True)
    for subject in subjects:
        for part in ("", "derivatives/cmb_labels/"):
            link = root / f"{part}sub-{subject}"
            if not link.exists():
                link.symlink_to(source / f"{part}sub-{subject}")
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="folder of a finished default run")
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    run, work = args.run.resolve(), args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    sites = yaml.safe_load((REPO / "config.yaml").read_text())["synth"]["sites"]
    split = pd.read_csv(run / "results/inputs/synth_internal/split.tsv", sep="\t", dtype=str)
    test = split.loc[split["split"] == "test", "key"].tolist()
    models = {name: str(run / "results/models" / name) for name in MODELS}
    twins = {"internalraw": {**sites["internal"], "draws_of": "internal", "phase_kind": "raw"},
             "externalraw": {**sites["external"], "draws_of": "external", "phase_kind": "raw"}}
    config = work / "twins.yaml"
    config.write_text(yaml.safe_dump({"datasets": {"external_raw": {"synthetic_site": "externalraw", "role": "external",
                                                                    "phase_sign": -1}},
                                      "synth": {"sites": twins}, "models": models}))
    # The internal twin: its test subjects only (the models trained on the others).
    snakemake(work, config, args.cores, *[f"results/synth/site-internalraw/sub-{key}/anat/sub-{key}_part-mag_swi.nii.gz"
                                          for key in test])
    datasets = {
        "internal_filtered": {"bids_dir": str(linked_bids(work / "bids_internal", run / "results/synth/site-internal", test)),
                              "role": "external"},
        "internal_raw": {"bids_dir": str(linked_bids(work / "bids_internal_raw", work / "results/synth/site-internalraw", test)),
                         "role": "external"},
        "external_raw": {"synthetic_site": "externalraw", "role": "external", "phase_sign": -1},
    }
    config.write_text(yaml.safe_dump({"datasets": datasets, "synth": {"sites": twins}, "models": models}))
    snakemake(work, config, args.cores)
    ours = pd.read_csv(work / "results/evaluation/models_by_site.tsv", sep="\t")
    home = pd.read_csv(run / "results/evaluation/models_by_site.tsv", sep="\t")
    table = pd.concat([ours, home[(home["dataset"] == "synth_external") & home["variant"].isin(ours["variant"])]])
    table = table[table["filter"] == "after"].pivot(index="variant", columns="dataset", values="cpm")
    table["internal_delta"] = table["internal_raw"] - table["internal_filtered"]
    table["external_delta"] = table["external_raw"] - table["synth_external"]
    print(table.round(4).to_string())


if __name__ == "__main__":
    main()
