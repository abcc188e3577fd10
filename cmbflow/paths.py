"""The one helper that builds every output path of the workflow (BIDS-like names).

Arguments may be Snakemake wildcard strings (``"{dataset}"``) as well as values, so the
rules and the package build identical paths.
"""

from __future__ import annotations

from cmbflow.io.bids import DEFAULT_PATTERNS

RESULTS = "results"
TRUTH = "derivatives/synth_truth/sub-{subject}/anat/sub-{subject}"


def output(stage: str, dataset: str, subject: str | None = None, desc: str | None = None,
           suffix: str = "", ext: str = ".nii.gz") -> str:
    """``results/<stage>/<dataset>[/sub-<subject>]/[sub-<subject>_][desc-<desc>_]<suffix><ext>``."""
    folder = f"{RESULTS}/{stage}/{dataset}" + (f"/sub-{subject}" if subject is not None else "")
    entities = ([f"sub-{subject}"] if subject is not None else []) + ([f"desc-{desc}"] if desc else []) + ([suffix] if suffix else [])
    return f"{folder}/{'_'.join(entities)}{ext}"


def log(stage: str, name: str) -> str:
    """Log file of one job: ``results/logs/<stage>/<name>.log``."""
    return f"{RESULTS}/logs/{stage}/{name}.log"


def benchmark(stage: str, name: str) -> str:
    """Benchmark TSV of one job: ``results/benchmarks/<stage>/<name>.tsv``."""
    return f"{RESULTS}/benchmarks/{stage}/{name}.tsv"


def synth_root(site: str) -> str:
    """BIDS root of a synthetic site's cohort."""
    return f"{RESULTS}/synth/site-{site}"


def synth_template(name: str) -> str:
    """Canonical (un-warped) synthetic template files: ``swi``, ``phase``, ``brainmask``, ``regions``."""
    suffixes = {"swi": "part-mag_swi", "phase": "part-phase_swi", "brainmask": "desc-brain_mask", "regions": "desc-mars_dseg"}
    return f"{RESULTS}/synth/template/tpl-synth_{suffixes[name]}.nii.gz"


def region_atlas() -> str:
    """MARS region atlas on the ICBM 2009c grid."""
    return f"{RESULTS}/atlas/tpl-ICBM2009c_desc-mars_dseg.nii.gz"


def synth_subject_files(site: str, subject: str) -> dict[str, str]:
    """Every file the generator writes for one subject (subject label without ``sub-``)."""
    root = synth_root(site)

    def bids(kind: str) -> str:
        return f"{root}/{DEFAULT_PATTERNS[kind][0]}".replace("{subject}", subject)

    truth = f"{root}/{TRUTH}".replace("{subject}", subject)
    return {
        "magnitude": bids("magnitude"),
        "phase": bids("phase"),
        "mask": bids("mask"),
        "markers": bids("markers"),
        "regions": f"{truth}_desc-regions_dseg.nii.gz",
        "brainmask": f"{truth}_desc-brain_mask.nii.gz",
        "mimics": f"{truth}_desc-mimics_markers.tsv",
    }


def synth_subject_ids(n_subjects: int) -> list[str]:
    """Subject labels of a synthetic site: ``001``, ``002``, ..."""
    return [f"{i:03d}" for i in range(1, n_subjects + 1)]
