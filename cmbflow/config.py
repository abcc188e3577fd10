"""Workflow configuration: the dataset list, its subjects and the train/test split."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from cmbflow import paths
from cmbflow.io.bids import LABEL, TRAINING_ROLES, annotation_files, annotation_root, discover_subjects, has_phase, patterns_for
from cmbflow.io.model_input import model_inputs
from cmbflow.io.nifti import InputError, image_geometry
from cmbflow.io.coords import world_axis_spacing
from cmbflow.sites import SiteParams


# Mappings whose entries are a list of things to run: a user's file replaces them whole.
REPLACED_MAPPINGS = (("datasets",), ("detector", "variants"))


def replaced_from_cli(configfiles) -> dict[tuple[str, ...], dict]:
    """The mappings of :data:`REPLACED_MAPPINGS` set by ``--configfile`` files (the last wins).

    Snakemake merges ``--configfile`` into config.yaml key by key; for ``datasets`` that
    would add the user's data to the synthetic cohort, and for ``detector.variants`` it would
    train the default variants besides the one a user lists. These mappings are replaced.
    """
    chosen = {}
    for path in configfiles or []:
        content = yaml.safe_load(Path(path).read_text()) or {}
        for keys in REPLACED_MAPPINGS:
            value = content
            for key in keys:
                value = value.get(key) if isinstance(value, dict) else None
            if value is not None:
                chosen[keys] = value
    return chosen


def apply_replaced(config: dict, replaced: dict[tuple[str, ...], dict]) -> None:
    """Put the user's mappings of :func:`replaced_from_cli` into ``config`` (in place)."""
    for keys, value in replaced.items():
        parent = config
        for key in keys[:-1]:
            parent = parent.setdefault(key, {})
        parent[keys[-1]] = value


def validate_config(config: dict, schema_path: str | Path, config_files) -> None:
    """Validate ``config`` against the JSON schema and fill in its defaults (Snakemake's
    ``validate``). A violation is one line naming the key, the value and the config files,
    instead of the validator's schema dump; keys the schema does not know are refused at
    every level (a ``dataset:`` typo must not run the built-in cohort)."""
    import jsonschema
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    try:
        validate(config, str(schema_path))
    except WorkflowError:
        schema = yaml.safe_load(Path(schema_path).read_text())
        error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(config))
        if error is None:
            raise
        key = ".".join(str(part) for part in error.absolute_path)
        where = f"config key {key} (value {error.instance!r})" if key and not isinstance(error.instance, dict) else \
            f"config key {key}" if key else "config"
        raise ValueError(f"{where}: {error.message}. Config files: "
                         f"{', '.join(str(f) for f in config_files)}. Fix or remove the key; config.yaml lists "
                         "every key with its meaning.") from None


def expand_user_paths(config: dict) -> None:
    """``~`` in the path keys of ``config`` (dataset folders, model folders, template files,
    fine-tuning parents given as folders) becomes the home folder, in place."""
    def expand(value):
        return str(Path(value).expanduser()) if isinstance(value, str) and value.startswith("~") else value
    for dataset in config["datasets"].values():
        for key in ("bids_dir", "dicom_dir", "annotations_dir"):
            if key in dataset:
                dataset[key] = expand(dataset[key])
    models = config["models"]
    for name in models:
        models[name] = expand(models[name])
    template = config["preprocessing"]["template"]
    if isinstance(template, dict):
        for key in template:
            template[key] = expand(template[key])
    for entry in config["fine_tune"].values():
        entry["parent"] = expand(entry["parent"])


def check_config(config: dict) -> None:
    """Cross-key checks the JSON schema cannot express, on a validated config (defaults filled in)."""
    sites = config["synth"]["sites"]
    for name, dataset in config["datasets"].items():
        site = dataset.get("synthetic_site")
        if site is not None and site not in sites:
            raise ValueError(f"datasets.{name}.synthetic_site is '{site}', but synth.sites has only {sorted(sites)}.")
        if site is not None and dataset.get("annotations_dir"):
            raise ValueError(f"datasets.{name}.annotations_dir: a synthetic site writes its own annotations; "
                             "annotations_dir is for bids_dir and dicom_dir datasets.")
    template = config["preprocessing"]["template"]
    if isinstance(template, dict):
        for key, path in template.items():
            if not Path(path).is_file():
                raise ValueError(f"preprocessing.template.{key}: file {path} not found. Give the path of your template "
                                 "image, its MARS region map (0 outside, 1 lobar, 2 deep, 3 infratentorial) and brain mask.")
    template_site = config["synth"]["template_site"]
    if template_site not in sites:
        raise ValueError(f"synth.template_site is '{template_site}', but synth.sites has only {sorted(sites)}.")
    check_trained_models(config["models"])
    check_model_inputs(config)
    mimic = config["detector"]["training"]["mimic_fraction"]
    fractions = {"detector.training.cmb_fraction": config["detector"]["training"]["cmb_fraction"],
                 **{f"fine_tune.{name}.cmb_fraction": entry["cmb_fraction"] for name, entry in config["fine_tune"].items()}}
    for key, fraction in fractions.items():
        if fraction + mimic > 1:
            raise ValueError(f"{key} ({fraction:g}) plus detector.training.mimic_fraction ({mimic:g}) is over 1: they are "
                             "shares of the training patches. Lower one of them.")
    narrowest, widest = config["detector"]["training"]["masked_margin_mm"]
    if narrowest > widest:
        raise ValueError(f"detector.training.masked_margin_mm {[narrowest, widest]}: give the range of margins (mm) as "
                         "[smallest, largest], e.g. [-2, 8].")
    point = config["detector"]["operating_point"]
    low, high = point["background_ranks"]
    most = config["detector"]["inference"]["max_candidates"]
    if point["site_adaptation"] != "none" and not low <= high <= most:
        raise ValueError(f"detector.operating_point.background_ranks {[low, high]}: give two ranks, the first not above the "
                         f"second, the second not above detector.inference.max_candidates ({most}), the candidates a "
                         "subject keeps (or set detector.operating_point.site_adaptation: none).")
    localizer = config["localizer"]
    if len(localizer["strides"]) != len(localizer["channels"]) - 1:
        raise ValueError(f"localizer.strides has {len(localizer['strides'])} entries; give one fewer than "
                         f"localizer.channels ({len(localizer['channels'])}), one per downsampling.")
    factors = [int(np.prod(localizer["strides"])) * pool for pool in localizer["pool"]]
    if any(size % factor for size, factor in zip(localizer["patch_size"], factors)):
        raise ValueError(f"localizer.patch_size {localizer['patch_size']} must be multiples of {factors} "
                         "(localizer.pool times the product of localizer.strides, per axis).")


def check_trained_models(models: dict) -> None:
    """Config ``models``: every folder holds ``model.pt`` and ``model_card.json``, and the
    localization network is among them (key ``localizer``)."""
    if not models:
        return
    if paths.LOCALIZER not in models:
        raise ValueError(f"config models: {sorted(models)} has no '{paths.LOCALIZER}'. Add the localization network's "
                         "folder (results/models/localizer/ of the run that trained the detectors) as models.localizer.")
    if len(models) < 2:
        raise ValueError("config models: name at least one detector variant besides the localizer.")
    for name, folder in models.items():
        files = paths.model_folder_files(folder)
        needed = ("weights", "card") if name == paths.LOCALIZER else ("weights", "card", "operating_point")
        for file in (files[kind] for kind in needed):
            if not Path(file).is_file():
                raise ValueError(f"config models.{name}: {file} not found. Point it at a model folder that the workflow "
                                 "wrote (results/models/<name>/ holding model.pt, model_card.json and, for a detector, "
                                 "operating_point.json).")


def _card(folder: str) -> tuple[dict, str]:
    path = paths.model_folder_files(folder)["card"]
    return (json.loads(Path(path).read_text()) if Path(path).is_file() else {}), path


def detector_inputs(config: dict) -> dict[str, tuple[list[str], str]]:
    """Detector name -> (the inputs it reads, where that is said): the variants of config
    ``detector.variants`` (or the model cards of config ``models``) and the fine-tuned ones
    (their parent's)."""
    models = config["models"]
    found = {}
    if models:
        for name, folder in models.items():
            card, path = _card(folder)
            if name != paths.LOCALIZER and card:
                found[name] = (model_inputs(card), path)
    else:
        for name, variant in config["detector"]["variants"].items():
            found[name] = (list(variant["inputs"]), f"detector.variants.{name}.inputs")
    for name, entry in config["fine_tune"].items():
        parent = entry["parent"]
        if parent in found:
            found[name] = found[parent]
        else:
            card, path = _card(parent)
            if card:
                found[name] = (model_inputs(card), path)
    return found


def localizer_reads_phase(config: dict) -> tuple[bool, str]:
    """Whether the localization network reads the phase, and where that is said."""
    models = config["models"]
    if paths.LOCALIZER in models:
        card, path = _card(models[paths.LOCALIZER])
        return any(str(line).startswith("phase") for line in card["input_channels"]), path
    return bool(config["localizer"]["use_phase"]), "localizer.use_phase"


def check_model_inputs(config: dict) -> None:
    """Every detector (and the localizer) runs on every dataset of a run, so a dataset
    without phase (``phase: false``) takes only models that do not read it."""
    no_phase = [name for name, dataset in config["datasets"].items() if not has_phase(dataset)]
    if not no_phase:
        return
    for name, (inputs, source) in detector_inputs(config).items():
        if "phase" in inputs:
            raise ValueError(
                f"datasets.{no_phase[0]} has no phase (phase: false), but detector '{name}' reads {' and '.join(inputs)} "
                f"({source}). Every detector of a run runs on every dataset: keep only detectors with inputs [swi] "
                "(detector.variants.<name>.inputs: [swi], or such model folders in models:), or run this dataset on its own.")
    reads_phase, source = localizer_reads_phase(config)
    if reads_phase:
        raise ValueError(f"datasets.{no_phase[0]} has no phase (phase: false), but the localization network reads it "
                         f"({source}). Set localizer.use_phase: false, or give a localizer trained without phase.")


def trained_spacing(models: dict) -> list[float] | None:
    """The voxel size the trained detectors of config ``models`` expect (their cards), if any."""
    for name, folder in models.items():
        if name != paths.LOCALIZER:
            card = yaml.safe_load(Path(paths.model_folder_files(folder)["card"]).read_text())  # JSON is YAML
            return [float(v) for v in card["spacing_mm"]]
    return None


def bids_dir(dataset: dict, name: str) -> str:
    """Root folder of dataset ``name``: its ``bids_dir``, or where its synthetic site or its
    DICOM conversion is written."""
    site = dataset.get("synthetic_site")
    if site is not None:
        return paths.synth_root(site)
    if "dicom_dir" in dataset:
        return paths.dicom_root(name)
    return str(Path(dataset["bids_dir"]).expanduser())


def generated_inputs(dataset: dict) -> bool:
    """Whether a dataset's input files are written by the workflow (synthetic site, DICOM
    conversion) rather than read where the user keeps them."""
    return "synthetic_site" in dataset or "dicom_dir" in dataset


def dicom_subjects(name: str, dataset: dict) -> dict[str, str]:
    """Subject label -> DICOM folder of a DICOM dataset: the folders under ``dicom_dir`` that
    ``dicom.subjects`` (a shell pattern, default ``*``) matches; the folder name is the label."""
    root = Path(dataset["dicom_dir"]).expanduser()
    if not root.is_dir():
        raise InputError(f"dataset '{name}': dicom_dir {root} does not exist or is not a folder. Fix datasets.{name}.dicom_dir.")
    pattern = dataset["dicom"]["subjects"]
    matches = sorted(root.glob(pattern))
    folders = [p for p in matches if p.is_dir()]
    loose = [str(p) for p in matches if not p.is_dir()]
    if loose:  # nothing is skipped in silence
        logging.getLogger(__name__).warning("dataset '%s': %d file(s) under dicom_dir are not in a subject folder and are "
                                            "not converted: %s. Put each subject's DICOM files in a folder of its own.",
                                            name, len(loose), ", ".join(loose[:10]))
    if not folders:
        raise InputError(f"dataset '{name}': no subject folder matches {root}/{pattern}. Put one folder of DICOM files per "
                         f"subject under dicom_dir, or set datasets.{name}.dicom.subjects.")
    odd = [str(p) for p in folders if not re.fullmatch(LABEL, p.name)]
    if odd:
        raise InputError(f"dataset '{name}': subject folder name(s) {odd[:10]} are not BIDS labels (letters and digits only); "
                         f"rename them or narrow datasets.{name}.dicom.subjects. No folder is skipped in silence.")
    return {p.name: str(p) for p in folders}


INPUT_KINDS = ("magnitude", "phase", "mask", "markers")


def subject_inputs(name: str, dataset: dict, config: dict) -> dict[str, dict[str, str]]:
    """Input files per subject key (``magnitude``, ``phase``, ``mask``, ``markers``; an absent
    annotation, or the phase of a dataset without phase, is ``""``): known from config for a
    synthetic site, discovered for real data."""
    site = dataset.get("synthetic_site")
    kinds = INPUT_KINDS if has_phase(dataset) else tuple(kind for kind in INPUT_KINDS if kind != "phase")
    if site is not None:
        keys = paths.synth_subject_ids(SiteParams.from_config(site, config["synth"]["sites"][site]).n_subjects)
        found = {key: {kind: paths.synth_subject_files(site, key)[kind] for kind in kinds} for key in keys}
    elif "dicom_dir" in dataset:
        found = {key: {kind: paths.dicom_subject_files(name, key).get(kind, "") for kind in kinds}
                 for key in dicom_subjects(name, dataset)}
        labels = annotation_root(name, dataset, None)  # NIfTI masks / markers on the converted images' grid
        if labels is not None:
            for key, files in found.items():
                mask, markers = annotation_files(labels, patterns_for(dataset), key, None)
                files.update(mask=str(mask or ""), markers=str(markers or ""))
    else:
        found = {files.key: {kind: str(getattr(files, kind) or "") for kind in kinds}
                 for files in discover_subjects(name, dataset)}
    return {key: {kind: files.get(kind, "") for kind in INPUT_KINDS} for key, files in found.items()}


def _by_subject(keys: list[str]) -> dict[str, list[str]]:
    """Subject label -> its keys (``01`` or ``01_ses-a``): sessions of one patient stay together."""
    groups: dict[str, list[str]] = {}
    for key in sorted(keys):
        groups.setdefault(key.split("_ses-")[0], []).append(key)
    return groups


def split_subjects(keys: list[str], test_fraction: float, seed: int) -> dict[str, str]:
    """Seeded train/test split by subject: key -> ``train`` or ``test`` (at least one subject
    of each when there are two or more). All sessions of a subject land on one side, so no
    patient is both trained and scored on. Independent of the order of ``keys``."""
    groups = _by_subject(keys)
    ordered = sorted(groups)
    order = np.random.default_rng(seed).permutation(len(ordered))
    n_test = int(round(test_fraction * len(ordered)))
    n_test = min(max(n_test, 1), len(ordered) - 1) if len(ordered) > 1 else 0
    test = {ordered[i] for i in order[:n_test]}
    return {key: "test" if subject in test else "train" for subject in ordered for key in groups[subject]}


def calibration_split(keys: list[str], n_calibration: int, seed: int) -> dict[str, str]:
    """Seeded split of an external dataset by subject: key -> ``calibration``
    (``n_calibration`` subjects with all their sessions, for fine-tuning and calibration,
    never scored) or ``test``. Independent of the order of ``keys``; at least one subject
    stays ``test``."""
    groups = _by_subject(keys)
    ordered = sorted(groups)
    order = np.random.default_rng(seed).permutation(len(ordered))
    chosen = {ordered[i] for i in order[:n_calibration]}
    return {key: "calibration" if subject in chosen else "test" for subject in ordered for key in groups[subject]}


def is_split(dataset: dict) -> bool:
    """Whether a dataset entry has a split table: internal (train / test), train (all train) or
    external with calibration subjects (calibration / test); otherwise it is scored whole."""
    return dataset["role"] in TRAINING_ROLES or dataset["calibration_subjects"] > 0


def check_splittable(keys: list[str], dataset: dict) -> None:
    """Raise ValueError (starting with the config key) when a dataset's subjects cannot be split
    as its entry asks; checked when the workflow is built, before any job runs."""
    subjects = len(_by_subject(keys))
    if dataset["role"] == "internal" and subjects < 2:
        raise ValueError(f"role: an internal dataset is split into training and test subjects and needs at least 2; "
                         f"this one has {subjects}. Add subjects, or make it role: external (scored whole, with "
                         "trained models from config models:).")
    if dataset["role"] == "train" and subjects < 1:
        raise ValueError("role: a training dataset (role train) needs at least 1 subject; this one has none.")
    n_calibration = dataset["calibration_subjects"]
    if dataset["role"] != "external" and n_calibration > 0:
        raise ValueError(f"calibration_subjects: only an external dataset sets subjects aside for calibration; this one is "
                         f"role: {dataset['role']}. Remove the key, or make the dataset role: external.")
    if dataset["role"] == "external" and n_calibration >= subjects > 0:
        raise ValueError(f"calibration_subjects: {n_calibration} of {subjects} subjects would leave none to score; lower it")


def dataset_split(keys: list[str], dataset: dict, split: dict) -> dict[str, str] | None:
    """The split of one dataset (config ``split`` and the dataset's entry): train / test for
    an internal dataset, all train for a training dataset (role train), calibration / test for
    an external one with calibration subjects, None for an external dataset scored whole. Only
    rule split_dataset calls this; everything else reads the table it writes (:func:`read_split`)."""
    check_splittable(keys, dataset)
    if dataset["role"] == "internal":
        return split_subjects(keys, split["test_fraction"], split["seed"])
    if dataset["role"] == "train":
        return {key: "train" for key in sorted(keys)}
    if is_split(dataset):
        return calibration_split(keys, int(dataset["calibration_subjects"]), split["seed"])
    return None


def write_split(path: str | Path, split: dict[str, str]) -> None:
    """The split table: ``key`` (subject[_ses-session]) and ``split`` (train / test / calibration)."""
    pd.DataFrame({"key": list(split), "split": list(split.values())}).to_csv(path, sep="\t", index=False)


def read_split(path: str | Path) -> dict[str, str]:
    """Subject key -> ``train`` / ``test`` / ``calibration``, from :func:`write_split`'s table."""
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    return dict(zip(table["key"], table["split"]))


def registration_template(config: dict) -> dict[str, str]:
    """Files of the registration template chosen by ``preprocessing.template``: ``image``,
    ``regions`` (MARS atlas on the image's grid) and ``brainmask``."""
    choice = config["preprocessing"]["template"]
    if isinstance(choice, dict):
        return {"image": choice["image"], "regions": choice["regions"], "brainmask": choice["brain_mask"]}
    if choice == "icbm_t1":
        return {"image": paths.icbm_template("t1w"), "regions": paths.icbm_template("regions"),
                "brainmask": paths.icbm_template("brainmask")}
    return {"image": paths.synth_template("swi"), "regions": paths.synth_template("regions"),
            "brainmask": paths.synth_template("brainmask")}


def target_spacing(config: dict) -> list[float]:
    """Voxel size (world x, y, z, mm) of the model-ready grid: ``preprocessing.target_spacing_mm``,
    else the trained models' (config ``models``), else that of the first internal dataset (its synthetic site's, or its first subject's
    header), else of the first training dataset (role train), else of the first dataset."""
    explicit = config["preprocessing"]["target_spacing_mm"]
    if explicit:
        return [float(v) for v in explicit]
    trained = trained_spacing(config["models"])
    if trained:
        return trained
    order = {"internal": 0, "train": 1, "external": 2}
    datasets = sorted(config["datasets"].items(), key=lambda item: order[item[1]["role"]])
    name, dataset = datasets[0]
    site = dataset.get("synthetic_site")
    if site is not None:
        spacing = world_axis_spacing(SiteParams.from_config(site, config["synth"]["sites"][site]).affine())
    elif "dicom_dir" in dataset:
        raise ValueError(f"preprocessing.target_spacing_mm: the model-ready voxel size cannot be read from dataset '{name}' "
                         "before its DICOM is converted. Set preprocessing.target_spacing_mm (e.g. [0.5, 0.5, 2.0]).")
    else:
        spacing = _first_readable_spacing(discover_subjects(name, dataset))
    return [round(float(v), 4) for v in spacing]


def _first_readable_spacing(subjects) -> np.ndarray:
    """World-axis voxel size of the first subject whose magnitude header reads. Unreadable
    files are left to validation, which reports them with their fix (the DAG must still
    build to get there); with none readable, 1 mm stands in until validation fails."""
    for files in subjects:
        try:
            return world_axis_spacing(image_geometry(files.magnitude)[1])
        except Exception:  # noqa: BLE001 - any unreadable header; validation names it
            continue
    return np.ones(3)
