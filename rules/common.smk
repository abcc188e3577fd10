# Helpers shared by all rules: subject lists, input functions, wildcard constraints.
# Every output path comes from cmbflow.paths.

import json
import os

from snakemake.exceptions import WorkflowError

from cmbflow import paths
from cmbflow.config import (bids_dir, check_splittable, dicom_subjects, generated_inputs, has_phase, is_split, read_split,
                            registration_template, subject_inputs, target_spacing)
from cmbflow.io.bids import SUBJECT_KEY, TRAINING_ROLES
from cmbflow.io.nifti import InputError
from cmbflow.localization.regions import maps_of
from cmbflow.sites import SiteParams


wildcard_constraints:
    dataset=r"[A-Za-z0-9]+(_[A-Za-z0-9]+)*",
    site=r"[A-Za-z0-9]+",
    subject=SUBJECT_KEY,
    variant=r"[A-Za-z0-9]+(_[A-Za-z0-9]+)*",


def _inputs_of(name):
    try:
        return subject_inputs(name, config["datasets"][name], config)
    except InputError as error:
        raise WorkflowError(str(error)) from None


SUBJECT_INPUTS = {name: _inputs_of(name) for name in config["datasets"]}  # dataset -> key -> files
SUBJECTS = {name: list(inputs) for name, inputs in SUBJECT_INPUTS.items()}
# Datasets without phase (config `phase: false`): no phase is converted, validated, preprocessed or read.
NO_PHASE_DATASETS = [name for name, dataset in config["datasets"].items() if not has_phase(dataset)]


def dataset_constraint(names, among):
    """Wildcard regex of dataset names: ``among`` the ``names`` (True) or not (False)."""
    alternatives = "|".join(names) or "(?!)"  # (?!) matches nothing
    # (?![A-Za-z0-9_]): the name ends there (a wildcard's regex is matched inside the whole path)
    return rf"(?:{alternatives})" if among else rf"(?!(?:{alternatives})(?![A-Za-z0-9_]))[A-Za-z0-9]+(_[A-Za-z0-9]+)*"


def preproc_inputs(name, key, kinds):
    """The preprocessed files ``kinds`` of one subject (kind -> path); a dataset without
    phase has no ``phase``."""
    files = paths.preproc_subject_files(name, key)
    return {kind: files[kind] for kind in kinds if kind != "phase" or name not in NO_PHASE_DATASETS}


TEMPLATE = registration_template(config)
TARGET_SPACING = target_spacing(config)
INTERNAL_DATASETS = [name for name, d in config["datasets"].items() if d["role"] == "internal"]
# Datasets the models learn from: the internal ones' training subjects and every subject of a
# training-only dataset (role train, e.g. the randomized synthetic cohort).
TRAINING_DATASETS = [name for name, d in config["datasets"].items() if d["role"] in TRAINING_ROLES]
# Datasets run through detection and scored: all but the training-only ones.
SCORED_DATASETS = [name for name, d in config["datasets"].items() if d["role"] != "train"]
# config `models:` (name -> trained model folder): use those models, train nothing.
TRAINED_MODELS = dict(config["models"])
TRAINING = not TRAINED_MODELS and bool(TRAINING_DATASETS)
HAS_MODELS = TRAINING or bool(TRAINED_MODELS)
# config use_gpu: the jobs that run a network (training, inference, region segmentation) ask the
# scheduler for one GPU (SLURM: --gpus=1), and for less time than on CPU cores.
GPU = 1 if config["use_gpu"] else 0


def network_runtime(cpu_minutes):
    """Minutes a job that runs a network asks for: ``cpu_minutes``, a quarter of it (at least 10)
    with a GPU; networks of this size run >= 10x faster on one (benchmarks/detector_benchmark.py)."""
    return max(10, cpu_minutes // 4) if config["use_gpu"] else cpu_minutes

BASE_VARIANTS = [name for name in TRAINED_MODELS if name != paths.LOCALIZER] if TRAINED_MODELS else list(config["detector"]["variants"])
# config `fine_tune:` (name -> parent, dataset, settings): detectors tuned on a site's calibration subjects.
FINE_TUNED = dict(config["fine_tune"])
VARIANTS = BASE_VARIANTS + [name for name in FINE_TUNED if name not in BASE_VARIANTS]


def detector_model(variant):
    """``weights``, ``card`` and ``operating_point`` of a detector: the folder config ``models``
    names, else the one training (or fine-tuning) writes."""
    if variant in TRAINED_MODELS:
        return paths.model_folder_files(TRAINED_MODELS[variant])
    return paths.model_files(variant)


def parent_model(name):
    """The model a fine-tuned detector starts from: a variant of this run, or a model folder."""
    parent = FINE_TUNED[name]["parent"]
    if parent in BASE_VARIANTS:
        return detector_model(parent)
    return paths.model_folder_files(parent)


def operating_point_file(variant, dataset):
    """The operating point a variant is used at on a dataset: calibrated on the dataset's
    calibration subjects (``datasets.<name>.calibrate``); else, on an external dataset, adapted
    to its background scores without labels (``detector.operating_point.site_adaptation``); else
    the model's own (the home site, where it was chosen)."""
    if config["datasets"][dataset]["calibrate"] and config["datasets"][dataset]["calibration_subjects"] > 0:
        return paths.calibrated_operating_point(variant, dataset)
    if config["detector"]["operating_point"]["site_adaptation"] != "none" and config["datasets"][dataset]["role"] == "external":
        return paths.adapted_operating_point(variant, dataset)
    return detector_model(variant)["operating_point"]


# What choosing an operating point reads of config detector.operating_point (the adaptation's other
# keys must not re-run it).
POINT_CRITERION = {key: config["detector"]["operating_point"][key] for key in ("criterion", "fp_per_subject", "background_ranks")}


def adaptation_brainmasks(dataset):
    """Test subject key -> model-ready brain mask: where a site's background scores are read."""
    return {key: preproc_inputs(dataset, key, ("brainmask",))["brainmask"] for key in test_subjects(dataset)}


def localizer_model():
    """``weights`` and ``card`` of the localization network (config ``models.localizer``, else trained)."""
    if TRAINED_MODELS:
        return paths.model_folder_files(TRAINED_MODELS[paths.LOCALIZER])
    return paths.localizer_files()


def network_setting(variant, key, default):
    """A detector's network ``key`` (``fuse_levels``, ``architecture``): from its config, or its
    model card's ``network`` record (a fine-tuned one's: its parent's); ``default`` where the
    record lacks it (cards before the baseline; the baseline has no fusion)."""
    if variant in FINE_TUNED:
        parent = FINE_TUNED[variant]["parent"]
        if parent in BASE_VARIANTS:
            return network_setting(parent, key, default)
        return json.loads(open(parent_model(variant)["card"]).read())["network"].get(key, default)
    if TRAINED_MODELS:
        return json.loads(open(detector_model(variant)["card"]).read())["network"].get(key, default)
    return config["detector"]["variants"][variant].get(key, default)


def fuses_levels(variant):
    """Whether a variant uses the Feature Fusion Module."""
    return bool(network_setting(variant, "fuse_levels", False))


def is_ours(variant):
    """Whether a variant is our detector (not the RetinaNet baseline)."""
    return network_setting(variant, "architecture", "cmbflow") == "cmbflow"


# The full method: the last of our base variants listed (the baseline is only compared), else the last.
FULL_VARIANT = next((v for v in reversed(BASE_VARIANTS) if is_ours(v)), BASE_VARIANTS[-1] if BASE_VARIANTS else None)
# config census.report_variant: whose census the per-subject reports show (default: the full method)
REPORT_VARIANT = config["census"]["report_variant"] or FULL_VARIANT
if REPORT_VARIANT is not None and REPORT_VARIANT not in VARIANTS:
    raise WorkflowError(f"census.report_variant: {REPORT_VARIANT!r} is not a detector of this run ({', '.join(VARIANTS)}); "
                        "name one of them, or null for the full method")


# Datasets split into parts (internal: train / test; external with calibration subjects:
# calibration / test). The split itself is decided once, by the checkpoint split_dataset, and
# read from its table by the functions below; here only whether it can be made is checked.
SPLIT_DATASETS = [name for name, dataset in config["datasets"].items() if is_split(dataset)]
for _name in SPLIT_DATASETS:
    try:
        check_splittable(SUBJECTS[_name], config["datasets"][_name])
    except ValueError as error:
        raise WorkflowError(f"datasets.{_name}.{error}") from None
for _name, _tune in FINE_TUNED.items():
    if _tune["dataset"] not in config["datasets"] or not config["datasets"][_tune["dataset"]]["calibration_subjects"] > 0:
        raise WorkflowError(f"fine_tune.{_name}.dataset: {_tune['dataset']!r} must be a dataset of this run with "
                            "calibration_subjects > 0 (the annotated subjects it is tuned on)")
_SPLIT_TABLES = {}  # split.tsv -> (mtime, table): read once per change, not once per input function


def split_of(name):
    """Subject key -> ``train`` / ``test`` / ``calibration`` of a split dataset, read from the
    table that the checkpoint split_dataset wrote. Call it inside input functions only: while
    the table is missing Snakemake runs the checkpoint first and asks again."""
    return _read_split_table(checkpoints.split_dataset.get(dataset=name).output[0])


def _read_split_table(table):
    """:func:`read_split` of ``table``, cached until the file changes."""
    mtime = os.stat(table).st_mtime_ns
    if _SPLIT_TABLES.get(table, (None,))[0] != mtime:
        _SPLIT_TABLES[table] = (mtime, read_split(table))
    return _SPLIT_TABLES[table][1]


def split_first(wildcards):
    """An input function that adds no file: it asks for the dataset's split, so that Snakemake
    writes it first. A rule whose params read the split needs one of its inputs to do so (else
    a SLURM job step, which builds the job anew, refuses the params)."""
    if wildcards.dataset in SPLIT_DATASETS:
        split_of(wildcards.dataset)
    return []


def subjects_in(name, part):
    """Keys of a dataset's subjects in ``part`` of its split; a dataset scored whole is all ``test``."""
    if name not in SPLIT_DATASETS:
        return list(SUBJECTS[name]) if part == "test" else []
    return [key for key, side in split_of(name).items() if side == part]


def test_subjects(name):
    """Subjects a detector is scored on: an internal dataset's test split, an external one's
    subjects but its calibration subjects (those tune and calibrate, and are never scored)."""
    return subjects_in(name, "test")


def train_subjects():
    """Training dataset (internal or role train) -> its training subjects."""
    return {name: subjects_in(name, "train") for name in TRAINING_DATASETS}


def held_out_subjects():
    """``<dataset>/<key>`` of the internal test subjects (recorded in model cards)."""
    return [f"{name}/{key}" for name in INTERNAL_DATASETS for key in test_subjects(name)]


# Datasets scored against their annotations: those whose test subjects all have a CMB mask
# (or, with the distance hit rule, a markers table).
ANNOTATION = ("mask", "markers") if config["evaluation"]["hit_rule"]["kind"] == "distance" else ("mask",)


def evaluated_datasets():
    def annotated(name):
        keys = test_subjects(name)
        return bool(keys) and all(any(SUBJECT_INPUTS[name][key][kind] for kind in ANNOTATION) for key in keys)
    return [name for name in SCORED_DATASETS if annotated(name)]


# Datasets with the generator's true region map (synthetic), for the localization accuracy.
TRUTH_DATASETS = [name for name in SCORED_DATASETS if "synthetic_site" in config["datasets"][name]]


def training_site_first(wildcards):
    """Priority of a simulated subject: the sites of the training datasets first. A dataset's
    preprocessing waits for its validation, which waits for its last subject; simulated in any
    order, the trainings started only after every site was simulated and preprocessed (run 5: at
    18 of 52 min), with the evaluation-only sites' work done before it instead of beside it."""
    training_sites = {config["datasets"][name].get("synthetic_site") for name in TRAINING_DATASETS}
    return 1 if wildcards.site in training_sites else 0


def training_subject_first(wildcards):
    """Priority of a subject's preprocessing: the training subjects come first, so the trainings
    start while the test subjects are still being preprocessed. Until its split table exists a
    training dataset counts whole; Snakemake asks again once the checkpoint has written it (it
    runs first: priority 10), and an internal dataset's test subjects then wait (in run 9 they
    delayed the training by ~2 min)."""
    if wildcards.dataset not in TRAINING_DATASETS:
        return 0
    table = paths.output("inputs", wildcards.dataset, suffix="split", ext=".tsv")
    if wildcards.dataset not in SPLIT_DATASETS or not os.path.exists(table):
        return 1
    return 1 if _read_split_table(table).get(wildcards.subject) == "train" else 0


SYNTH_SITES = sorted({d["synthetic_site"] for d in config["datasets"].values() if "synthetic_site" in d})


def site_config(site):
    """Settings of a synthetic site (config synth.sites.<site>) as a plain dict."""
    return dict(config["synth"]["sites"][site])


def site_contrast(site):
    """The template image whose tissue maps a synthetic site's anatomy starts from."""
    return SiteParams.from_config(site, site_config(site)).anatomy_contrast


def site_subjects(site):
    return paths.synth_subject_ids(SiteParams.from_config(site, site_config(site)).n_subjects)


def synth_subject_outputs(site, subject):
    return paths.synth_subject_files(site, subject)


def dataset_input_files(wildcards):
    """Files the validation of a dataset reads: the generated cohort, or the real files found
    (so that a file added, replaced or removed reruns validation). Real files that do not
    exist are left out: validation itself reports them with their fix."""
    dataset = config["datasets"][wildcards.dataset]
    site = dataset.get("synthetic_site")
    files = [f"{paths.synth_root(site)}/participants.tsv"] if site is not None else []
    for inputs in SUBJECT_INPUTS[wildcards.dataset].values():
        files += [path for path in inputs.values() if path and (generated_inputs(dataset) or os.path.exists(path))]
    return files


def subject_files(wildcards):
    """The input images and annotations of one subject. Files of real data that do not exist
    are left out here, so that validation (which every subject job waits for) reports them
    with their fix instead of Snakemake's bare MissingInputException."""
    generated = generated_inputs(config["datasets"][wildcards.dataset])
    files = SUBJECT_INPUTS[wildcards.dataset][wildcards.subject].values()
    return [path for path in files if path and (generated or os.path.exists(path))]


def truth_regions(wildcards):
    """The generator's true region map of a synthetic subject (none for real data)."""
    site = config["datasets"][wildcards.dataset].get("synthetic_site")
    return [paths.synth_subject_files(site, wildcards.subject)["regions"]] if site else []


def registration_qc_figure():
    """The QC figure of preprocess_subject, in the report."""
    return report(paths.preproc_subject_files("{dataset}", "{subject}")["qc"], caption="../report/registration_qc.rst",
                  category="Registration QC", subcategory="{dataset}", labels={"dataset": "{dataset}", "subject": "{subject}"})


def preproc_files(dataset, subject, phase=True):
    """Outputs of preprocess_subject except the QC figure (declared with report()); without
    ``phase`` for datasets that have none."""
    return {k: v for k, v in paths.preproc_subject_files(dataset, subject).items() if k != "qc" and (phase or k != "phase")}


MODEL_INPUTS = ("swi", "phase", "brainmask", "cmb_mask", "markers")  # preprocessed files a detector reads


def training_subjects():
    """``<dataset>/<key>`` -> preprocessed files, for the training subjects of every internal dataset."""
    return {f"{name}/{key}": preproc_inputs(name, key, MODEL_INPUTS)
            for name, keys in train_subjects().items() for key in keys}


def calibration_subject_files(name):
    """``<dataset>/<key>`` -> preprocessed files, for the calibration subjects of a dataset."""
    return {f"{name}/{key}": preproc_inputs(name, key, MODEL_INPUTS)
            for key in subjects_in(name, "calibration")}


def training_files(wildcards):
    return [path for files in training_subjects().values() for path in files.values()]


LOCALIZER_INPUTS = ("swi", "phase", "regions", "cmb_mask", "xfm_to_native")  # ... and the localizer


def localizer_subjects():
    """``<dataset>/<key>`` -> preprocessed files the localizer trains on (internal training subjects)."""
    return {f"{name}/{key}": preproc_inputs(name, key, LOCALIZER_INPUTS)
            for name, keys in train_subjects().items() for key in keys}


def segmentation_subjects(name):
    """Test subject key -> the preprocessed files its region segmentation reads."""
    return {key: preproc_inputs(name, key, ("swi", "phase", "xfm_to_native"))
            for key in test_subjects(name)}


def region_maps(name):
    """Test subject key -> its ``network`` (localizer) and ``atlas`` (warped atlas) region maps."""
    return {key: {"network": paths.region_segmentation(name, key), "atlas": paths.preproc_subject_files(name, key)["regions"]}
            for key in test_subjects(name)}


def truth_files(name):
    """Test subject key -> the generator's true ``truth_regions`` and CMB ``markers`` (synthetic datasets)."""
    site = config["datasets"][name]["synthetic_site"]
    return {key: {"truth_regions": paths.synth_subject_files(site, key)["regions"],
                  "markers": paths.synth_subject_files(site, key)["markers"]} for key in test_subjects(name)}


def detection_subjects(name):
    """Test subject key -> its preprocessed files and original magnitude (whose grid the
    candidates' voxel indices refer to)."""
    return {key: {"files": preproc_inputs(name, key, ("swi", "phase", "brainmask")),
                  "original": SUBJECT_INPUTS[name][key]["magnitude"]} for key in test_subjects(name)}


def report_subjects(name):
    """Test subject key -> what its report reads: the user's ``inputs``, the preprocessed ``swi``,
    the region ``maps`` that config ``localization`` reads, the registration ``quality`` and ``qc``."""
    maps = region_maps(name)
    return {key: {"inputs": {kind: SUBJECT_INPUTS[name][key][kind] for kind in ("magnitude", "phase") if SUBJECT_INPUTS[name][key][kind]},
                  **preproc_inputs(name, key, ("swi", "quality", "qc")),
                  "maps": {m: maps[key][m] for m in maps_of(config["localization"])}}
            for key in test_subjects(name)}


def detection_files(wildcards):
    subjects = detection_subjects(wildcards.dataset).values()
    return [path for subject in subjects for path in [*subject["files"].values(), subject["original"]]]


def evaluation_subjects(name):
    """Test subject key -> its CMB ``mask`` and ``markers`` (original grid) and ``regions``
    (map name -> the region maps that config ``localization`` reads, model-ready grid)."""
    maps = region_maps(name)
    return {key: {"mask": SUBJECT_INPUTS[name][key]["mask"], "markers": SUBJECT_INPUTS[name][key]["markers"],
                  "regions": {m: maps[key][m] for m in maps_of(config["localization"])}} for key in test_subjects(name)}


def evaluation_inputs(wildcards):
    files = evaluation_subjects(wildcards.dataset).values()
    return [path for subject in files for kind, path in subject.items() if path and kind != "regions"]


def example_runs(name):
    """Variant -> its localized candidates and, on annotated datasets, its evaluation tables."""
    runs = {}
    evaluated = name in evaluated_datasets()
    for v in VARIANTS:
        runs[v] = {"candidates": paths.candidate_files(v, name)["table"]}
        if evaluated:
            runs[v].update({k: paths.evaluation_files(v, name)[k] for k in ("matched", "summary")})
    return runs


# Fig. 6 needs a baseline (ours without FFM) and an FFM variant and an annotated internal test subject with a CMB.
BASELINE = next((v for v in BASE_VARIANTS if is_ours(v) and not fuses_levels(v)), None)
FUSED = next((v for v in BASE_VARIANTS if is_ours(v) and fuses_levels(v)), None)


def figure_dataset():
    return next((d for d in evaluated_datasets() if d in INTERNAL_DATASETS), None)


# Config sections read only by later stages or for display: a change there must not retrain a model.
DOWNSTREAM_OF = {
    "detector": ("progress_bars", "use_gpu", "localization", "region_margin_mm", "localizer", "census", "evaluation", "models",
                 "fine_tune"),
    "localizer": ("progress_bars", "use_gpu", "detector", "localization", "region_margin_mm", "census", "evaluation", "models",
                  "fine_tune"),
}


def model_config(model):
    """The resolved config a model (``detector`` or ``localizer``) is trained with and its card
    records: everything but the sections it does not read, and the detector's inference options.
    Of the datasets, the ones it trains on: adding a site to score retrains nothing."""
    resolved = {k: v for k, v in config.items() if k not in DOWNSTREAM_OF[model]}
    resolved["datasets"] = {name: input_settings(name) for name in TRAINING_DATASETS}
    if "detector" in resolved:
        resolved["detector"] = {k: v for k, v in config["detector"].items() if k not in ("inference", "operating_point")}
    return _key_sorted(resolved)


def _key_sorted(value):
    """Mappings with sorted keys, recursively: a --configfile that merges into a section
    reorders the config's keys, and Snakemake would take the reordered params as a change."""
    if isinstance(value, dict):
        return {k: _key_sorted(value[k]) for k in sorted(value)}
    return [_key_sorted(v) for v in value] if isinstance(value, list) else value


SCORING_KEYS = ("calibration_subjects", "calibrate")  # how a dataset is scored: no input check or preprocessing reads them


def input_settings(name):
    """A dataset's config without the scoring keys: setting a site's calibration subjects must
    not re-validate or re-preprocess it."""
    return {k: v for k, v in config["datasets"][name].items() if k not in SCORING_KEYS}


def dataset_settings(name):
    """:func:`input_settings` with bids_dir resolved (synthetic sites live under results/)."""
    return {**input_settings(name), "bids_dir": bids_dir(config["datasets"][name], name)}


def final_outputs():
    """The final targets that do not depend on any split (the others come from scored_outputs)."""
    targets = [paths.output("inputs", name, suffix="manifest", ext=".tsv") for name in config["datasets"]]
    targets += [paths.output("inputs", name, suffix="split", ext=".tsv") for name in SPLIT_DATASETS]
    targets += [paths.output("qc", f"synth_{site}", suffix="overview", ext=".png") for site in SYNTH_SITES]
    targets += [paths.registration_quality(name) for name in config["datasets"]]
    if TRAINING:
        targets += [paths.model_files(variant)[kind] for variant in VARIANTS
                    for kind in ("weights", "card", "curves_png", "operating_point")]
        targets += [paths.localizer_files()[kind] for kind in ("weights", "card", "curves_png")]
    targets += [paths.model_files(name)[kind] for name in FINE_TUNED for kind in ("weights", "card", "curves_png", "operating_point")]
    if HAS_MODELS:
        targets += [path for variant in VARIANTS for name in SCORED_DATASETS if SUBJECTS[name]
                    for path in (paths.candidate_files(variant, name)["table"], *paths.census_files(variant, name).values(),
                                 paths.export_folder(variant, name))]
        targets += [paths.report_folder(name) for name in SCORED_DATASETS if SUBJECTS[name] and REPORT_VARIANT]
        targets += [paths.figure(name, figure)["png"] for name in SCORED_DATASETS if SUBJECTS[name]
                    for figure in ("candidate_panels", "anatomical_filtering")]
    if TRUTH_DATASETS and HAS_MODELS:
        targets.append(paths.localization_accuracy())
    targets += [paths.preproc_subject_files(name, key)["qc"] for name, keys in SUBJECTS.items() for key in keys]
    if SYNTH_SITES:
        targets += [paths.synth_template(name) for name in ("swi", "phase", "brainmask", "regions")]
    return targets


def scored_outputs(wildcards):
    """The final evaluation targets, an input function: which datasets are scored depends
    on their test subjects, read from the split checkpoint's tables."""
    evaluated = evaluated_datasets() if HAS_MODELS else []
    if not evaluated:
        return []
    targets = [paths.anatomical_filtering(), paths.evaluation_table("models_by_site", ".tsv")]
    if len(VARIANTS) > 1:
        targets.append(paths.evaluation_table("paired_differences", ".tsv"))
    targets += [paths.figure(name, figure)["png"] for name in evaluated
                for figure in ("froc", "precision_recall", "fp_per_subject", "count_agreement")]
    targets += [paths.figure(f"{v}/{name}", "tsne")["png"] for v in VARIANTS for name in evaluated]
    if BASELINE and FUSED and figure_dataset():
        targets.append(paths.figure("models", "feature_levels")["png"])
    return targets


def operating_subjects(variant):
    """Where a detector's own operating point is chosen: a trained variant's validation subjects
    (its card names them; None), a fine-tuned one's tuning subjects (its dataset's calibration subjects)."""
    if variant in FINE_TUNED:
        dataset = FINE_TUNED[variant]["dataset"]
        return calibration_subject_files(dataset), list(calibration_subject_files(dataset))
    return training_subjects(), None


OWN_POINTS = (BASE_VARIANTS if TRAINING else []) + list(FINE_TUNED)  # operating points this run chooses
