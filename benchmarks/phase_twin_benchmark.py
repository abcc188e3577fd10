"""Raw-phase twins: does a site score the same when its phase comes raw (background field,
wraps) instead of high-pass filtered? Issue 17 asks for a CPM within 0.03 of the filtered twin.
With ``--twin gre``: GRE-magnitude twins of the internal test subjects instead of their SWI,
scored as they should be (``magnitude: gre``: preprocessing forms the SWI) and as they would be
by mistake (declared ``swi``), against the SWI originals.

Needs a finished default run (its trained models and its synthetic cohort). Writes, under
``--workdir``, raw-phase twins of the internal site's *test* subjects (``draws_of``: the same
anatomy, lesions and noise) and of the whole external site, as BIDS folders of links beside
their filtered originals, scores all of them with the run's models (``models:``, nothing is
trained) and prints the paired CPM table after filtering:

    python benchmarks/phase_twin_benchmark.py --run /tmp/dag --workdir /tmp/twins --cores 2 [--twin gre]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]


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
    parser.add_argument("--twin", choices=("raw", "gre"), default="raw", help="raw phase, or GRE magnitude instead of SWI")
    parser.add_argument("--variants", nargs="+", help="detector variants to score (default: every detector the run trained)")
    args = parser.parse_args()
    run, work = args.run.resolve(), args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    sites = yaml.safe_load((REPO / "config.yaml").read_text())["synth"]["sites"]
    split = pd.read_csv(run / "results/inputs/synth_internal/split.tsv", sep="\t", dtype=str)
    test = split.loc[split["split"] == "test", "key"].tolist()
    variants = args.variants or sorted(p.parent.name for p in (run / "results/models").glob("*/model.pt") if p.parent.name != "localizer")
    models = {name: str(run / "results/models" / name) for name in [*variants, "localizer"]}
    if args.twin == "gre":
        return gre_twins(run, work, sites, test, models, args.cores)
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


def gre_twins(run: Path, work: Path, sites: dict, test: list[str], models: dict, cores: int) -> None:
    """The internal test subjects with their GRE magnitude instead of the SWI (same draws)."""
    twins = {"internalgre": {**sites["internal"], "draws_of": "internal", "magnitude_kind": "gre"}}
    config = work / "twins.yaml"
    # a dataset on the twin site, so that the workflow knows it; only the test subjects are made
    config.write_text(yaml.safe_dump({"datasets": {"internal_gre": {"synthetic_site": "internalgre", "role": "external"}},
                                      "synth": {"sites": twins}, "models": models}))
    snakemake(work, config, cores, *[f"results/synth/site-internalgre/sub-{key}/anat/sub-{key}_part-mag_swi.nii.gz" for key in test])
    gre = str(linked_bids(work / "bids_internal_gre", work / "results/synth/site-internalgre", test))
    datasets = {
        "internal_swi": {"bids_dir": str(linked_bids(work / "bids_internal", run / "results/synth/site-internal", test)),
                         "role": "external"},
        "internal_gre": {"bids_dir": gre, "role": "external", "magnitude": "gre"},
        "internal_gre_as_swi": {"bids_dir": gre, "role": "external"},
    }
    config.write_text(yaml.safe_dump({"datasets": datasets, "synth": {"sites": twins}, "models": models}))
    snakemake(work, config, cores)
    table = pd.read_csv(work / "results/evaluation/models_by_site.tsv", sep="\t")
    table = table[table["filter"] == "after"]
    for column in ("cpm", "sensitivity", "fp_per_subject", "count_mae"):
        print(column)
        print(table.pivot(index="variant", columns="dataset", values=column).round(4).to_string())


if __name__ == "__main__":
    main()
