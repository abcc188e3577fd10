"""Slabs and masked backgrounds: does a trained run hold when a scan covers less of the head?

Writes the scored subjects of one site of a finished default run (``--site``: the internal test
subjects, or every subject of the external or unseen site) again as five BIDS datasets (role
external): the whole volume (the reference), the upper part only (the lowest ``--cut-low-mm``
cut off: cerebellum and skull base), the lower part only (the top ``--cut-top-mm`` cut off), and
the whole volume set to 0 outside a brain mask, grown by one voxel (``stripped``: as BET or
SynthStrip deliver a brain) or by ``--spm-rim-mm`` (``spm``: an SPM-style mask, brain and a rim).
The brain mask is the generator's where the site writes one (internal), else the run's registered
one (preprocessing's ``space-native`` mask); every CMB is kept inside (a stripping that cuts one
off is not what is measured). Then scores them with that run's models through ``models:``, in a
folder of its own (``--workdir``; the run itself is only read; docs/results.md, "Slabs and
skull-stripped scans", "Masked backgrounds"):

    python benchmarks/coverage_benchmark.py --run /path/to/default_run --workdir /tmp/coverage --cores 2 [--site unseen]

The table is ``<workdir>/results/evaluation/models_by_site.tsv``; the rows after filtering are printed.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import yaml
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]
IMAGES = ("part-mag_swi.nii.gz", "part-phase_swi.nii.gz")
DATASETS = ("whole", "upper", "lower", "stripped", "spm")


def _brain(results: Path, source: Path, site: str, subject: str, rim_mm: float) -> np.ndarray:
    """The subject's brain mask (the generator's, else the run's registered one) grown by ``rim_mm``
    (0: one voxel), with every CMB and 2 mm around it inside."""
    truth = source / f"derivatives/synth_truth/sub-{subject}/anat/sub-{subject}_desc-brain_mask.nii.gz"
    registered = results / f"preproc/synth_{site}/sub-{subject}/sub-{subject}_space-native_desc-brain_mask.nii.gz"
    image = nib.load(truth if truth.exists() else registered)
    brain, spacing = np.asanyarray(image.dataobj) > 0, image.header.get_zooms()[:3]
    brain = (ndimage.binary_dilation(brain, iterations=1) if rim_mm <= 0
             else ndimage.distance_transform_edt(~brain, sampling=spacing) <= rim_mm)
    lesions = source / f"derivatives/cmb_labels/sub-{subject}/anat/sub-{subject}_desc-cmb_mask.nii.gz"
    if lesions.exists():
        brain |= ndimage.distance_transform_edt(np.asanyarray(nib.load(lesions).dataobj) == 0, sampling=spacing) <= 2.0
    return ndimage.binary_fill_holes(brain)


def _write(source: Path, target: Path, subject: str, crop: slice, brain: np.ndarray | None) -> None:
    """One subject's magnitude, phase and CMB mask, cropped along the slices (and masked)."""
    files = [(f"sub-{subject}/anat/sub-{subject}_{name}", True) for name in IMAGES]
    files.append((f"derivatives/cmb_labels/sub-{subject}/anat/sub-{subject}_desc-cmb_mask.nii.gz", False))
    for relative, is_image in files:
        image = nib.load(source / relative)
        data = np.asanyarray(image.dataobj)
        if brain is not None and is_image:
            data = np.where(brain, data, 0).astype(data.dtype)
        cropped = nib.Nifti1Image(data, image.affine, image.header).slicer[:, :, crop]
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(np.asanyarray(cropped.dataobj), cropped.affine, cropped.header), target / relative)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="folder of a finished default run (holds results/)")
    parser.add_argument("--workdir", type=Path, required=True, help="where the data and the scoring run are written")
    parser.add_argument("--site", default="internal", choices=("internal", "external", "unseen"))
    parser.add_argument("--variant", default="rpn_ffm_hspl")
    parser.add_argument("--spm-rim-mm", type=float, default=6.0, help="the spm dataset's mask: the brain grown by this")
    parser.add_argument("--cut-low-mm", type=float, default=48.0)
    parser.add_argument("--cut-top-mm", type=float, default=44.0)
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS), help="which of them (default: all)")
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    results = args.run.resolve() / "results"
    source = results / "synth" / f"site-{args.site}"
    if args.site == "internal":
        split = pd.read_csv(results / "inputs" / "synth_internal" / "split.tsv", sep="\t", dtype=str)
        subjects = list(split.loc[split["split"] == "test", "key"])
    else:
        subjects = sorted(path.name[4:] for path in source.glob("sub-*"))
    phase_sign = yaml.safe_load((REPO / "config.yaml").read_text())["datasets"][f"synth_{args.site}"].get("phase_sign", 1)
    slice_mm = float(nib.load(source / f"sub-{subjects[0]}/anat/sub-{subjects[0]}_{IMAGES[0]}").header.get_zooms()[2])
    low, top = int(round(args.cut_low_mm / slice_mm)), int(round(args.cut_top_mm / slice_mm))
    cuts = {"whole": (slice(None), None), "upper": (slice(low, None), None), "lower": (slice(None, -top or None), None),
            "stripped": (slice(None), 0.0), "spm": (slice(None), args.spm_rim_mm)}  # slices kept, mask's rim
    datasets = {f"coverage_{name}": cuts[name] for name in args.datasets}
    workdir = args.workdir.resolve()
    root = workdir / "data"
    for name, (crop, rim_mm) in datasets.items():
        target = root / name
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        shutil.copy(source / "dataset_description.json", target / "dataset_description.json")
        for subject in subjects:
            brain = _brain(results, source, args.site, subject, rim_mm) if rim_mm is not None else None
            _write(source, target, subject, crop, brain)
    models = results / "models"
    config = {"datasets": {name: {"bids_dir": str(root / name), "role": "external", "phase_sign": phase_sign} for name in datasets},
              "models": {args.variant: str(models / args.variant), "localizer": str(models / "localizer")}}
    config_file = root / "coverage.yaml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    command = ["snakemake", "results/evaluation/models_by_site.tsv", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
               "--configfile", str(REPO / "config.yaml"), str(config_file), "--cores", str(args.cores), "--quiet", "rules"]
    subprocess.run(command, check=True)
    table = pd.read_csv(workdir / "results" / "evaluation" / "models_by_site.tsv", sep="\t")
    table = table[table["dataset"].isin(datasets) & (table["filter"] == "after")]
    print(table[["dataset", "cmbs", "threshold", "cpm", "sensitivity", "fp_per_subject", "count_mae"]].to_string(index=False))


if __name__ == "__main__":
    sys.exit(main())
