"""The one helper that builds every output path of the workflow (BIDS-like names).

Arguments may be Snakemake wildcard strings (``"{dataset}"``) as well as values, so the
rules and the package build identical paths.
"""

from __future__ import annotations

from cmbflow.io.bids import DEFAULT_PATTERNS

RESULTS = "results"
TRUTH = "derivatives/synth_truth/sub-{subject}/anat/sub-{subject}"


# BIDS entity order after sub/ses (``from_`` stands for ``from``, a Python keyword).
ENTITY_ORDER = ("from_", "to", "mode", "part", "space", "desc")


def output(stage: str, dataset: str, subject: str | None = None, desc: str | None = None,
           suffix: str = "", ext: str = ".nii.gz", **entities: str | None) -> str:
    """``results/<stage>/<dataset>[/sub-<subject>]/[sub-<subject>_][<key>-<value>_...]<suffix><ext>``.

    ``entities`` are any of :data:`ENTITY_ORDER` (``from_``, ``to``, ``mode``, ``part``,
    ``space``), written in that order before ``desc``.
    """
    unknown = set(entities) - set(ENTITY_ORDER)
    if unknown:
        raise ValueError(f"unknown entities {sorted(unknown)}; known: {ENTITY_ORDER}")
    entities["desc"] = desc
    folder = f"{RESULTS}/{stage}/{dataset}" + (f"/sub-{subject}" if subject is not None else "")
    parts = [f"sub-{subject}"] if subject is not None else []
    parts += [f"{key.rstrip('_')}-{entities[key]}" for key in ENTITY_ORDER if entities.get(key)]
    parts += [suffix] if suffix else []
    return f"{folder}/{'_'.join(parts)}{ext}"


def log(stage: str, name: str) -> str:
    """Log file of one job: ``results/logs/<stage>/<name>.log``."""
    return f"{RESULTS}/logs/{stage}/{name}.log"


def benchmark(stage: str, name: str) -> str:
    """Benchmark TSV of one job: ``results/benchmarks/<stage>/<name>.tsv``."""
    return f"{RESULTS}/benchmarks/{stage}/{name}.tsv"


def synth_root(site: str) -> str:
    """BIDS root of a synthetic site's cohort."""
    return f"{RESULTS}/synth/site-{site}"


def dicom_root(dataset: str) -> str:
    """BIDS root of a DICOM dataset's conversion (``datasets.<name>.dicom_dir``)."""
    return f"{RESULTS}/dicom/{dataset}"


def dicom_subject_files(dataset: str, subject: str) -> dict[str, str]:
    """What the conversion of one subject's DICOM folder writes: ``magnitude``, ``phase``
    (NIfTI as dcm2niix wrote them) and their BIDS sidecars."""
    root = dicom_root(dataset)
    files = {kind: f"{root}/{DEFAULT_PATTERNS[kind][0]}".replace("{subject}", subject) for kind in ("magnitude", "phase")}
    return {**files, **{f"{kind}_sidecar": path.replace(".nii.gz", ".json") for kind, path in files.items()}}


def synth_template(name: str) -> str:
    """Canonical (un-warped) synthetic template files: ``swi``, ``phase``, ``brainmask``, ``regions``."""
    suffixes = {"swi": "part-mag_swi", "phase": "part-phase_swi", "brainmask": "desc-brain_mask", "regions": "desc-mars_dseg"}
    return f"{RESULTS}/synth/template/tpl-synth_{suffixes[name]}.nii.gz"


def synth_tissue_maps(contrast: str) -> str:
    """Tissue parameter maps of the ICBM template built from its ``contrast`` image (``t1``, ``t2``)."""
    return f"{RESULTS}/synth/template/tpl-ICBM2009c_desc-{contrast}_tissue.npz"


def region_atlas() -> str:
    """MARS region atlas on the ICBM 2009c grid."""
    return f"{RESULTS}/atlas/tpl-ICBM2009c_desc-mars_dseg.nii.gz"


def icbm_template(name: str) -> str:
    """ICBM 2009c files written beside the atlas: ``t1w`` (brain-extracted), ``brainmask``, ``regions``."""
    if name == "regions":
        return region_atlas()
    suffixes = {"t1w": "desc-brain_T1w", "brainmask": "desc-brain_mask"}
    return f"{RESULTS}/atlas/tpl-ICBM2009c_{suffixes[name]}.nii.gz"


def preproc_subject_files(dataset: str, subject: str) -> dict[str, str]:
    """Every file the preprocessing of one subject writes (``results/preproc/<dataset>/sub-<subject>/``).

    ``space-norm``: the model-ready grid (world-aligned RAS+, target spacing, cropped to the
    head); ``space-native``: the subject's original grid. The ``from-template_to-native``
    transform resamples template images into the subject (and maps subject points to the
    template); ``from-native_to-template`` is its inverse.
    """
    def out(suffix, ext=".nii.gz", **entities):
        return output("preproc", dataset, subject, suffix=suffix, ext=ext, **entities)

    return {
        "swi": out("swi", part="mag", space="norm", desc="preproc"),
        "phase": out("swi", part="phase", space="norm", desc="preproc"),
        "brainmask": out("mask", space="norm", desc="brain"),
        "regions": out("dseg", space="norm", desc="mars"),
        "cmb_mask": out("mask", space="norm", desc="cmb"),
        "markers": out("markers", ".tsv", space="norm", desc="cmb"),
        "sidecar": out("swi", ".json", space="norm", desc="preproc"),
        "native_brainmask": out("mask", space="native", desc="brain"),
        "native_regions": out("dseg", space="native", desc="mars"),
        "xfm_to_native": out("xfm", ".h5", from_="template", to="native", mode="image"),
        "xfm_to_template": out("xfm", ".h5", from_="native", to="template", mode="image"),
        "quality": out("quality", ".tsv", desc="registration"),
        "qc": out("qc", ".png", desc="registration"),
    }


def registration_quality(dataset: str) -> str:
    """Per-dataset registration quality table (one row per subject)."""
    return output("preproc", dataset, suffix="quality", ext=".tsv", desc="registration")


def synth_subject_files(site: str, subject: str) -> dict[str, str]:
    """Every file the generator writes for one subject (subject label without ``sub-``)."""
    root = synth_root(site)

    def bids(kind: str) -> str:
        return f"{root}/{DEFAULT_PATTERNS[kind][0]}".replace("{subject}", subject)

    truth = f"{root}/{TRUTH}".replace("{subject}", subject)
    return {
        "magnitude": bids("magnitude"),
        "phase": bids("phase"),
        "acquisition": bids("magnitude").replace(".nii.gz", ".json"),  # BIDS sidecar: field, TE, voxel, ...
        "mask": bids("mask"),
        "markers": bids("markers"),
        "regions": f"{truth}_desc-regions_dseg.nii.gz",
        "brainmask": f"{truth}_desc-brain_mask.nii.gz",
        "mimics": f"{truth}_desc-mimics_markers.tsv",
    }


def synth_subject_ids(n_subjects: int) -> list[str]:
    """Subject labels of a synthetic site: ``001``, ``002``, ..."""
    return [f"{i:03d}" for i in range(1, n_subjects + 1)]


def model_files(variant: str) -> dict[str, str]:
    """A trained detector, one folder per variant (``results/models/<variant>/``): ``weights``
    (state_dicts, for ``torch.load(weights_only=True)``), ``card`` (model card JSON),
    ``curves`` (training curves TSV), ``curves_png`` and ``operating_point`` (JSON, rule
    choose_operating_point)."""
    folder = f"{RESULTS}/models/{variant}"
    return {"weights": f"{folder}/model.pt", "card": f"{folder}/model_card.json",
            "curves": f"{folder}/curves.tsv", "curves_png": f"{folder}/curves.png",
            "operating_point": f"{folder}/operating_point.json"}


def calibrated_operating_point(variant: str, dataset: str) -> str:
    """A variant's operating point calibrated on one dataset's calibration subjects."""
    return f"{RESULTS}/calibration/{variant}/{dataset}/operating_point.json"


def adapted_operating_point(variant: str, dataset: str) -> str:
    """A variant's operating point adapted, without labels, to one dataset's background scores."""
    return f"{RESULTS}/adaptation/{variant}/{dataset}/operating_point.json"


LOCALIZER = "localizer"  # model folder name of the localization network; not a detector variant name


def training_checkpoint(variant: str) -> str:
    """Resume point of a training job, outside its outputs (Snakemake deletes the outputs of
    a failed job, not this)."""
    return f"{RESULTS}/checkpoints/{variant}/checkpoint.pt"


def detection_files(variant: str, dataset: str) -> dict[str, str]:
    """Raw detector output of one variant on one dataset (``results/detections/<variant>/<dataset>/``):
    ``table`` (TSV, all subjects) and ``subjects``, the folder of per-subject tables and
    probability maps."""
    folder = f"{RESULTS}/detections/{variant}/{dataset}"
    return {"table": f"{folder}/detections.tsv", "subjects": f"{folder}/subjects"}


def subject_detections(variant: str, dataset: str, subject: str, kind: str = "table") -> str:
    """Per-subject outputs of inference, in ``detection_files(...)["subjects"]``: ``table``
    (detections TSV) or ``probability`` (CMB probability map on the original image grid)."""
    folder = detection_files(variant, dataset)["subjects"]
    return {"table": f"{folder}/sub-{subject}_detections.tsv",
            "probability": f"{folder}/sub-{subject}_desc-cmb_probseg.nii.gz"}[kind]


def candidate_files(variant: str, dataset: str) -> dict[str, str]:
    """Localized candidates of one variant on one dataset (``results/candidates/<variant>/<dataset>/``):
    ``table`` (the detections with ``region`` and ``kept``) and ``subjects``, the folder of
    per-subject tables."""
    folder = f"{RESULTS}/candidates/{variant}/{dataset}"
    return {"table": f"{folder}/candidates.tsv", "subjects": f"{folder}/subjects"}


def subject_candidates(variant: str, dataset: str, subject: str) -> str:
    """Per-subject localized candidate table, in ``candidate_files(...)["subjects"]``."""
    return f"{candidate_files(variant, dataset)['subjects']}/sub-{subject}_candidates.tsv"


def census_files(variant: str, dataset: str) -> dict[str, str]:
    """The MARS-style census of one variant on one dataset (``results/census/<variant>/<dataset>/``):
    ``cmbs`` (one row per kept CMB above the operating threshold) and ``counts`` (per subject
    and region)."""
    folder = f"{RESULTS}/census/{variant}/{dataset}"
    return {"cmbs": f"{folder}/cmbs.tsv", "counts": f"{folder}/counts.tsv"}


def export_folder(variant: str, dataset: str) -> str:
    """The census of one variant on one dataset for review in viewers
    (``results/export/<variant>/<dataset>/``), per subject: :func:`subject_export`."""
    return f"{RESULTS}/export/{variant}/{dataset}"


def subject_export(variant: str, dataset: str, subject: str, kind: str) -> str:
    """A subject's ``markups`` (3D Slicer ``.mrk.json``) or ``labels`` (label map NIfTI on the
    original grid) in :func:`export_folder`."""
    folder = export_folder(variant, dataset)
    return {"markups": f"{folder}/sub-{subject}_desc-cmb_markups.mrk.json",
            "labels": f"{folder}/sub-{subject}_desc-cmb_dseg.nii.gz"}[kind]


def report_folder(dataset: str) -> str:
    """The per-subject reports of one dataset (``results/reports/<dataset>/``), per subject:
    :func:`subject_report`."""
    return f"{RESULTS}/reports/{dataset}"


def subject_report(dataset: str, subject: str, kind: str) -> str:
    """A subject's report in :func:`report_folder`: ``pdf`` or ``html``."""
    return f"{report_folder(dataset)}/sub-{subject}_report.{kind}"


def localizer_files() -> dict[str, str]:
    """The trained localization network (``results/models/localizer/``), same layout as
    :func:`model_files`."""
    return model_files(LOCALIZER)


def region_segmentations(dataset: str) -> str:
    """Folder of the localizer's region maps of a dataset's test subjects (model-ready grid)."""
    return f"{RESULTS}/regions/{dataset}"


def region_segmentation(dataset: str, subject: str) -> str:
    """The localizer's MARS region map of one subject, in :func:`region_segmentations`."""
    return f"{region_segmentations(dataset)}/sub-{subject}_space-norm_desc-network_dseg.nii.gz"


def localization_accuracy() -> str:
    """Region accuracy at true CMB centres and Dice per class, network vs atlas lookup."""
    return f"{RESULTS}/evaluation/localization_accuracy.tsv"


def anatomical_filtering() -> str:
    """Sensitivity and FPs per subject before / after anatomical filtering, per variant x dataset."""
    return f"{RESULTS}/evaluation/anatomical_filtering.tsv"


EVALUATION_TABLES = ("summary", "froc", "froc_band", "pr", "regions", "matched", "lesions", "subjects")


def evaluation_files(variant: str, dataset: str) -> dict[str, str]:
    """Detection evaluation of one variant on one annotated dataset
    (``results/evaluation/<variant>/<dataset>/``), TSVs: ``summary`` (CPM, AP, metrics at the
    operating point, before / after filtering), ``froc`` (curve points), ``froc_band``
    (bootstrap band), ``pr`` (precision-recall), ``regions`` (operating point per region),
    ``matched`` (candidates with outcome), ``lesions`` (the CMBs, with their best score) and
    ``subjects`` (true and detected counts per subject, after filtering)."""
    folder = f"{RESULTS}/evaluation/{variant}/{dataset}"
    return {name: f"{folder}/{name}.tsv" for name in EVALUATION_TABLES}


def evaluation_table(name: str, ext: str) -> str:
    """A table over all variants and datasets: ``results/evaluation/<name><ext>`` (``.tsv`` or ``.md``)."""
    return f"{RESULTS}/evaluation/{name}{ext}"


def figure(scope: str, name: str) -> dict[str, str]:
    """One figure as ``png`` (report) and ``pdf`` (vector): ``results/figures/<scope>/<name>.<ext>``;
    ``scope`` is a dataset, ``<variant>/<dataset>`` or ``models``."""
    stem = f"{RESULTS}/figures/{scope}/{name}"
    return {"png": f"{stem}.png", "pdf": f"{stem}.pdf"}


def model_folder_files(folder: str) -> dict[str, str]:
    """``weights``, ``card`` and ``operating_point`` of a model folder given by the user
    (config ``models``), laid out as :func:`model_files` writes it."""
    folder = folder.rstrip("/")
    return {"weights": f"{folder}/model.pt", "card": f"{folder}/model_card.json",
            "operating_point": f"{folder}/operating_point.json"}
