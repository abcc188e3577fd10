"""The model card: the JSON beside a trained model's weights (:mod:`cmbflow.models.weights`).

It says what the network expects (input channels, voxel spacing, intensity normalization,
anchors), how it was built and trained (variant, network, settings, resolved workflow config,
data split) and with what (package versions, git commit), so a model folder stands on its own.
Reading it (the operating point, in census and evaluation jobs) needs no torch.
"""

from __future__ import annotations

import json
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

# What each input a detector may read is, in channel order (config detector.variants.<v>.inputs).
INPUT_CHANNELS = {"swi": "swi: SWI magnitude, N4-corrected, brain percentiles mapped to 0..1",
                  "phase": "phase: phase_sign * radians / pi, in -1..1"}
PACKAGES = ("cmbflow", "torch", "monai", "numpy", "nibabel", "antspyx", "snakemake")


def versions() -> dict[str, str]:
    """Versions of Python and of the packages that shape a model."""
    found = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found


def git_commit(folder: str | Path = ".") -> str:
    """Commit of the workflow's checkout (``+dirty`` with uncommitted changes), or ``unknown``."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=folder, capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def input_descriptions(inputs) -> list[str]:
    """The card's ``input_channels``: one line per input, in channel order."""
    return [INPUT_CHANNELS[name] for name in inputs]


def normalization_record(preprocessing: dict) -> dict:
    """How the model-ready input was normalized (config ``preprocessing``), for a model card."""
    return {"swi_percentiles": preprocessing["swi_percentiles"], "n4": preprocessing["n4"],
            "phase": "phase_sign * radians / pi"}


def provenance_record(train: list[str], validation: list[str], held_out, curves, config: dict, workflow_dir: str) -> dict:
    """The card entries every cmbflow model carries: data split (subject names), the last
    point of the training curves, package versions, git commit and the resolved config."""
    return {"data_split": {"train": list(train), "validation": list(validation), "test": sorted(held_out)},
            "final_curves": curves.iloc[-1].to_dict() if len(curves) else {},
            "versions": versions(),
            "git_commit": git_commit(workflow_dir),
            "resolved_config": config}


def operating_threshold(point_file: str | Path, configured: float | None = None) -> float:
    """The score threshold a detector is used at: ``configured`` (config
    ``census.score_threshold``) when set, else the one in its ``operating_point.json``
    (rule ``choose_operating_point``: chosen on the validation subjects of training)."""
    if configured is not None:
        return float(configured)
    path = Path(point_file)
    if not path.exists():
        raise ValueError(f"{path}: no operating point beside this model (a model folder from before cmbflow chose it in "
                         "its own step). Set census.score_threshold in the config, or rerun the workflow's "
                         "choose_operating_point rule for the model.")
    return float(json.loads(path.read_text())["threshold"])


def threshold_source(point_file: str | Path, configured: float | None = None) -> str:
    """Where the threshold of :func:`operating_threshold` comes from, for the tables."""
    if configured is not None:
        return "config census.score_threshold"
    content = json.loads(Path(point_file).read_text())
    return f"{content.get('source', 'operating point')} ({Path(point_file)})"
