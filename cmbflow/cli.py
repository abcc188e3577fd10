"""The ``cmbflow`` command: generate the synthetic cohort and check datasets by hand.

The workflow (``snakemake --cores all``) is the main entry point; these commands run the
same package functions for one-off use.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import yaml

from cmbflow import paths
from cmbflow.logs import progress, setup_logging
from cmbflow.settings import config_schema, schema_defaults

log = logging.getLogger("cmbflow")


def _load_config(path: str | None) -> dict:
    if path is None:
        return {}
    return yaml.safe_load(Path(path).read_text()) or {}


def cmd_synth(args: argparse.Namespace) -> int:
    from cmbflow.synth.cohort import make_simulator, synthesize_subject, write_dataset_files
    from cmbflow.sites import SiteParams
    from cmbflow.synth.randomize import Randomization

    config = _load_config(args.config)
    synth = {**schema_defaults("synth"), **config.get("synth", {})}
    site_values = dict(synth.get("sites", {}).get(args.site, {}))
    if args.n_subjects is not None:
        site_values["n_subjects"] = args.n_subjects
    site = SiteParams.from_config(args.site, site_values)
    seed = args.seed if args.seed is not None else synth["seed"]
    simulator = make_simulator(workers=args.threads, contrast=site.anatomy_contrast, **config.get("atlas", {}))
    randomization = Randomization.from_config({**schema_defaults("synth.randomization"), **(synth.get("randomization") or {})})
    out = Path(args.out)
    marker_files = []
    for subject in progress(paths.synth_subject_ids(site.n_subjects), args.progress, f"site {site.name}"):
        outputs = {k: str(out / Path(v).relative_to(paths.synth_root(site.name)))
                   for k, v in paths.synth_subject_files(site.name, subject).items()}
        synthesize_subject(simulator, site, subject, seed, outputs, randomization)
        marker_files.append(outputs["markers"])
    write_dataset_files(site, out, marker_files)
    log.info("wrote %d subjects of site '%s' to %s", site.n_subjects, site.name, out)
    return 0


# Dataset keys that name where the data is (given as arguments) or only the workflow uses.
NOT_CLI_KEYS = ("bids_dir", "synthetic_site", "dicom_dir", "dicom", "patterns", "calibration_subjects", "calibrate")


def _dataset_schema() -> tuple[dict, dict]:
    schema = config_schema()
    return schema["definitions"]["dataset"], schema


def dataset_from_args(args: argparse.Namespace) -> dict:
    """The dataset entry ``cmbflow validate`` checks: ``--config``'s ``datasets.<--name>``
    (if given), then every per-dataset option given on the command line, validated against
    the config schema's dataset definition with its defaults filled in."""
    import jsonschema

    definition, schema = _dataset_schema()
    dataset = {}
    if args.config:
        datasets = _load_config(args.config).get("datasets", {})
        if args.name not in datasets:
            raise ValueError(f"--config {args.config} has no datasets.{args.name}; it has {sorted(datasets)}. "
                             "Pass --name with one of them.")
        dataset.update(datasets[args.name])
    if args.bids_dir:
        dataset["bids_dir"] = args.bids_dir
    for key in definition["properties"]:
        value = getattr(args, key, None)
        if value is not None:
            dataset[key] = value
    patterns = dict(dataset.get("patterns") or {})
    for item in args.pattern or []:
        kind, _, pattern = item.partition("=")
        patterns[kind] = pattern
    if patterns:
        dataset["patterns"] = patterns
    dataset.setdefault("role", "external")
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(
        {"$ref": "#/definitions/dataset", "definitions": schema["definitions"]}).iter_errors(dataset))
    if error is not None:
        key = ".".join(str(p) for p in error.absolute_path) or "dataset"
        raise ValueError(f"{key}: {error.message}. See config.yaml for the per-dataset keys.")
    for key, spec in definition["properties"].items():
        if "default" in spec:
            dataset.setdefault(key, spec["default"])
    dataset["bids_dir"] = str(Path(dataset["bids_dir"]).expanduser())
    return dataset


def cmd_validate(args: argparse.Namespace) -> int:
    from cmbflow.io.nifti import InputError
    from cmbflow.io.validate import validate_dataset

    try:
        dataset = dataset_from_args(args)
        manifest = validate_dataset(args.name, dataset, args.tolerance_mm)
    except (InputError, ValueError) as error:
        log.error("%s", error)
        return 1
    manifest.to_csv(sys.stdout, sep="\t", index=False)
    return 0


def _add_dataset_options(parser: argparse.ArgumentParser) -> None:
    """One option per scalar per-dataset config key (from the schema: one source of truth)."""
    definition, _ = _dataset_schema()
    kinds = {"string": str, "number": float, "integer": int}
    for key, spec in definition["properties"].items():
        if key in NOT_CLI_KEYS:
            continue
        flag = "--" + key.replace("_", "-")
        help_text = spec.get("description", f"datasets.<name>.{key}")
        if spec.get("type") == "array":
            parser.add_argument(flag, dest=key, type=float, nargs=spec.get("minItems", 2), help=help_text)
        elif spec.get("type") == "boolean":
            parser.add_argument(flag, dest=key, action=argparse.BooleanOptionalAction, help=help_text)
        else:
            parser.add_argument(flag, dest=key, type=kinds.get(spec.get("type"), str), choices=spec.get("enum"), help=help_text)
    parser.add_argument("--pattern", action="append", metavar="KIND=PATTERN",
                        help="datasets.<name>.patterns.KIND (magnitude, phase, mask, markers); repeat for several")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cmbflow", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    synth = sub.add_parser("synth", help="generate a synthetic site as a BIDS dataset")
    synth.add_argument("--site", default="internal", help="site name under synth.sites of --config (default: internal)")
    synth.add_argument("--out", required=True, help="output BIDS root (created)")
    synth.add_argument("--config", default="config.yaml" if Path("config.yaml").exists() else None,
                       help="workflow config with synth settings (default: ./config.yaml if present)")
    synth.add_argument("--n-subjects", type=int, help="override the site's n_subjects")
    synth.add_argument("--seed", type=int, help="override synth.seed")
    synth.add_argument("--threads", type=int, default=1, help="FFT threads")
    synth.add_argument("--progress", action=argparse.BooleanOptionalAction, default=sys.stderr.isatty(),
                       help="show a progress bar (default: on a terminal)")
    synth.set_defaults(func=cmd_synth)

    validate = sub.add_parser("validate", help="check a dataset against the input contract (the options are the "
                              "config's per-dataset keys)")
    validate.add_argument("bids_dir", nargs="?", help="dataset root (default: --config's datasets.<--name>.bids_dir)")
    validate.add_argument("--config", help="a workflow config: validate its datasets.<--name> entry")
    validate.add_argument("--name", default="dataset", help="dataset name (in --config, and in messages)")
    validate.add_argument("--tolerance-mm", type=float, default=0.01, help="validation.affine_tolerance_mm")
    _add_dataset_options(validate)
    validate.set_defaults(func=cmd_validate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(level=logging.DEBUG if args.verbose else logging.INFO)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
