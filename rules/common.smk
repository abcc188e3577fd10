# Helpers shared by all rules: subject lists, input functions, wildcard constraints.
# Every output path comes from cmbflow.paths.

from snakemake.exceptions import WorkflowError

from cmbflow import paths
from cmbflow.config import bids_dir, subject_keys
from cmbflow.io.bids import SUBJECT_KEY
from cmbflow.io.nifti import InputError
from cmbflow.synth.site import SiteParams


wildcard_constraints:
    dataset=r"[A-Za-z0-9]+(_[A-Za-z0-9]+)*",
    site=r"[A-Za-z0-9]+",
    subject=SUBJECT_KEY,


def _subjects_of(name):
    try:
        return subject_keys(name, config["datasets"][name], config)
    except InputError as error:
        raise WorkflowError(str(error)) from None


SUBJECTS = {name: _subjects_of(name) for name in config["datasets"]}
SYNTH_SITES = sorted({d["synthetic_site"] for d in config["datasets"].values() if "synthetic_site" in d})


def site_config(site):
    """Settings of a synthetic site (config synth.sites.<site>) as a plain dict."""
    return dict(config["synth"]["sites"][site])


def site_subjects(site):
    return paths.synth_subject_ids(SiteParams.from_config(site, site_config(site)).n_subjects)


def synth_subject_outputs(site, subject):
    return paths.synth_subject_files(site, subject)


def dataset_input_files(wildcards):
    """Files the validation of a dataset reads: the generated cohort, or nothing for real
    data (read in place; validation itself reports missing files)."""
    dataset = config["datasets"][wildcards.dataset]
    site = dataset.get("synthetic_site")
    if site is None:
        return []
    files = [f"{paths.synth_root(site)}/participants.tsv"]
    for subject in SUBJECTS[wildcards.dataset]:
        outputs = synth_subject_outputs(site, subject)
        files += [outputs[kind] for kind in ("magnitude", "phase", "mask", "markers")]
    return files


def dataset_settings(name):
    """Dataset config with bids_dir resolved (synthetic sites live under results/)."""
    return {**config["datasets"][name], "bids_dir": bids_dir(config["datasets"][name])}


def final_outputs():
    targets = [paths.output("inputs", name, suffix="manifest", ext=".tsv") for name in config["datasets"]]
    targets += [paths.output("inputs", name, suffix="split", ext=".tsv")
                for name, d in config["datasets"].items() if d["role"] == "internal"]
    targets += [paths.output("qc", f"synth_{site}", suffix="overview", ext=".png") for site in SYNTH_SITES]
    if SYNTH_SITES:
        targets += [paths.synth_template(name) for name in ("swi", "phase", "brainmask", "regions")]
    return targets
