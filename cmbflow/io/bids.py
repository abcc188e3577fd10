"""Finding subjects in a BIDS-like dataset through configurable file patterns.

A pattern is a path relative to the dataset's ``bids_dir`` with the placeholders
``{subject}`` and, optionally, ``{session}``; shell wildcards (``*``) are allowed. Each
file kind may list several patterns (with and without sessions); the first that matches a
magnitude image defines where its phase and annotations are looked for.
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass
from pathlib import Path

from cmbflow.io.nifti import InputError

ANAT = "sub-{subject}/anat/sub-{subject}"
ANAT_SES = "sub-{subject}/ses-{session}/anat/sub-{subject}_ses-{session}"
LABELS = "derivatives/cmb_labels/sub-{subject}/anat/sub-{subject}"
LABELS_SES = "derivatives/cmb_labels/sub-{subject}/ses-{session}/anat/sub-{subject}_ses-{session}"
DEFAULT_PATTERNS: dict[str, list[str]] = {
    "magnitude": [f"{ANAT}_part-mag_swi.nii.gz", f"{ANAT_SES}_part-mag_swi.nii.gz"],
    "phase": [f"{ANAT}_part-phase_swi.nii.gz", f"{ANAT_SES}_part-phase_swi.nii.gz"],
    "mask": [f"{LABELS}_desc-cmb_mask.nii.gz", f"{LABELS_SES}_desc-cmb_mask.nii.gz"],
    "markers": [f"{LABELS}_desc-cmb_markers.tsv", f"{LABELS_SES}_desc-cmb_markers.tsv"],
}
LABEL = r"[A-Za-z0-9]+"
SUBJECT_KEY = rf"{LABEL}(_ses-{LABEL})?"


@dataclass(frozen=True)
class SubjectFiles:
    """The input files of one subject (and session); annotation paths are None when absent."""

    subject: str
    session: str | None
    magnitude: Path
    phase: Path
    mask: Path | None
    markers: Path | None

    @property
    def key(self) -> str:
        """Identifier used in output names: ``<subject>`` or ``<subject>_ses-<session>``."""
        return self.subject if self.session is None else f"{self.subject}_ses-{self.session}"


def patterns_for(dataset: dict) -> dict[str, list[str]]:
    """The dataset's patterns: config ``patterns`` (string or list per kind) over the defaults."""
    patterns = {kind: list(values) for kind, values in DEFAULT_PATTERNS.items()}
    for kind, value in (dataset.get("patterns") or {}).items():
        patterns[kind] = [value] if isinstance(value, str) else list(value)
    return patterns


def _regex(pattern: str) -> re.Pattern:
    out, seen = [], set()
    for token in re.split(r"(\{subject\}|\{session\}|\*)", pattern):
        if token in ("{subject}", "{session}"):
            name = token[1:-1]
            out.append(f"(?P={name})" if name in seen else f"(?P<{name}>{LABEL})")
            seen.add(name)
        elif token == "*":
            out.append(r"[^/]*")
        else:
            out.append(re.escape(token))
    return re.compile("".join(out) + r"\Z")


def _fill(pattern: str, subject: str, session: str | None) -> str | None:
    if "{session}" in pattern and session is None or "{session}" not in pattern and session is not None:
        return None
    return pattern.replace("{subject}", subject).replace("{session}", session or "")


def _companion(root: Path, patterns: list[str], subject: str, session: str | None) -> Path | None:
    """First existing file among ``patterns`` filled for this subject/session (wildcards globbed)."""
    for pattern in patterns:
        filled = _fill(pattern, subject, session)
        if filled is None:
            continue
        matches = sorted(glob.glob(str(root / filled)))
        if matches:
            return Path(matches[0])
    return None


def expected_path(root: Path, patterns: list[str], subject: str, session: str | None) -> Path:
    """Where a file of this kind is expected (the first applicable pattern), for messages."""
    for pattern in patterns:
        filled = _fill(pattern, subject, session)
        if filled is not None:
            return root / filled
    return root / patterns[0]


def discover_subjects(name: str, dataset: dict) -> list[SubjectFiles]:
    """All subjects of dataset ``name`` (config entry ``dataset``), sorted by key.

    Raises :class:`InputError` when no magnitude image matches, or when two files claim the
    same subject/session.
    """
    root = Path(dataset["bids_dir"])
    if not root.is_dir():
        raise InputError(f"dataset '{name}': bids_dir {root} does not exist or is not a folder. Fix datasets.{name}.bids_dir in your config.")
    patterns = patterns_for(dataset)
    found: dict[str, SubjectFiles] = {}
    duplicates: list[str] = []
    for pattern in patterns["magnitude"]:
        regex = _regex(pattern)
        wildcard = pattern.replace("{subject}", "*").replace("{session}", "*")
        for path in sorted(glob.glob(str(root / wildcard))):
            match = regex.match(Path(path).relative_to(root).as_posix())
            if not match:
                continue
            entities = match.groupdict()
            subject, session = entities["subject"], entities.get("session")
            phase = _companion(root, patterns["phase"], subject, session) or expected_path(root, patterns["phase"], subject, session)
            files = SubjectFiles(subject, session, Path(path), phase,
                                 _companion(root, patterns["mask"], subject, session),
                                 _companion(root, patterns["markers"], subject, session))
            if files.key in found:
                duplicates.append(f"sub-{files.key}: {found[files.key].magnitude} and {path}")
                continue
            found[files.key] = files
    if duplicates:
        raise InputError(f"dataset '{name}': duplicate subject ids (two magnitude images for one subject/session): "
                         + "; ".join(duplicates) + ". Keep one file per subject/session or narrow datasets."
                         + f"{name}.patterns.magnitude.")
    if not found:
        raise InputError(f"dataset '{name}': no subjects found in {root}: no file matches "
                         + " or ".join(patterns["magnitude"])
                         + f". Check bids_dir, or set datasets.{name}.patterns.magnitude to your file layout.")
    return [found[key] for key in sorted(found)]
