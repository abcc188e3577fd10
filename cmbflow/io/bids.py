"""Finding subjects in a BIDS-like dataset through configurable file patterns.

A pattern is a path relative to the dataset's ``bids_dir`` with the placeholders
``{subject}`` and, optionally, ``{session}``; shell wildcards (``*``) are allowed. Each
file kind may list several patterns (with and without sessions); the first that matches a
magnitude image defines where its phase and annotations are looked for. A pattern ending in
``.nii.gz`` also finds ``.nii`` files and vice versa (nibabel reads both; exports mix them).

Nothing is skipped in silence: a file that a magnitude pattern's wildcard finds but whose
subject or session label is not a BIDS label (letters and digits only: no ``_``, space or
accent), and a phase image without its magnitude, are errors naming the files.
"""

from __future__ import annotations

import glob
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from cmbflow.io.annotations import MARKER_EXTENSIONS
from cmbflow.io.nifti import InputError
from cmbflow.settings import dataset_entry

log = logging.getLogger(__name__)

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
# Dataset roles whose subjects the models learn from (annotations required): internal (its
# training split) and train (every subject); external datasets are only scored.
TRAINING_ROLES = ("internal", "train")


@dataclass(frozen=True)
class SubjectFiles:
    """The input files of one subject (and session); annotation paths are None when absent,
    the phase path None in a dataset without phase (config ``phase: false``)."""

    subject: str
    session: str | None
    magnitude: Path
    phase: Path | None
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


def _extensions(pattern: str) -> list[str]:
    """``pattern`` and its twins: the other NIfTI extension (``.nii.gz`` <-> ``.nii``); for a
    markers table (``.tsv``), Slicer's point lists (``.mrk.json``, ``.fcsv``) of the same name."""
    if pattern.endswith(".tsv"):
        return [pattern[:-4] + extension for extension in MARKER_EXTENSIONS]
    if pattern.endswith(".nii.gz"):
        return [pattern, pattern[:-3]]
    if pattern.endswith(".nii"):
        return [pattern, pattern + ".gz"]
    return [pattern]


def _companion(root: Path, patterns: list[str], subject: str, session: str | None) -> Path | None:
    """First existing file among ``patterns`` filled for this subject/session (wildcards globbed;
    of a pattern's twins, ``.tsv`` before Slicer's, ``.nii.gz`` before ``.nii``). Files of the same
    pattern that are not read are named in a warning."""
    for pattern in patterns:
        filled = _fill(pattern, subject, session)
        if filled is None:
            continue
        matches = [path for variant in _extensions(filled) for path in sorted(glob.glob(glob.escape(str(root)) + "/" + variant))]
        if matches:
            if len(matches) > 1:
                log.warning("%s is read; %s %s not: they match the same pattern %s. Remove or rename the one that is not "
                            "meant.", matches[0], ", ".join(matches[1:]), "is" if len(matches) == 2 else "are", pattern)
            return Path(matches[0])
    return None


def _candidates(root: Path, pattern: str) -> list[str]:
    """Files under ``root`` that ``pattern`` could name, whatever their labels."""
    paths = set()
    for variant in _extensions(pattern):
        wildcard = variant.replace("{subject}", "*").replace("{session}", "*")
        paths.update(glob.glob(glob.escape(str(root)) + "/" + wildcard))
    return sorted(paths)


def _matches(root: Path, patterns: list[str]):
    """``(path, subject, session)`` of the files that ``patterns`` match with BIDS labels (in
    pattern order), and the files a pattern's wildcard finds whose labels are not BIDS labels."""
    matched, seen, unmatched = [], set(), set()
    for pattern in patterns:
        regexes = [_regex(variant) for variant in _extensions(pattern)]
        for path in _candidates(root, pattern):
            relative = Path(path).relative_to(root).as_posix()
            match = next((m for m in (regex.match(relative) for regex in regexes) if m), None)
            if match is None:
                unmatched.add(path)
                continue
            if path not in seen:
                seen.add(path)
                entities = match.groupdict()
                matched.append((path, entities["subject"], entities.get("session")))
    return matched, sorted(unmatched - seen)


def expected_path(root: Path, patterns: list[str], subject: str, session: str | None) -> Path:
    """Where a file of this kind is expected (the first applicable pattern), for messages."""
    for pattern in patterns:
        filled = _fill(pattern, subject, session)
        if filled is not None:
            return root / filled
    return root / patterns[0]


def _entities(matched, path):
    return next((subject, session) for p, subject, session in matched if p == path)


def has_phase(dataset: dict) -> bool:
    """Whether a dataset has phase images (``datasets.<name>.phase``; false for SWI- or T2*-only cohorts)."""
    return bool(dataset_entry(dataset)["phase"])


def annotation_root(name: str, dataset: dict, root: Path | None) -> Path | None:
    """Where a dataset's CMB masks and markers are looked for: ``annotations_dir`` (the only
    place for a DICOM dataset's, which are NIfTI on the converted images' grid), else ``root``."""
    if not dataset.get("annotations_dir"):
        return root
    labels = Path(dataset["annotations_dir"]).expanduser()
    if not labels.is_dir():
        raise InputError(f"dataset '{name}': annotations_dir {labels} does not exist or is not a folder. "
                         f"Fix datasets.{name}.annotations_dir (the root of patterns.mask and patterns.markers).")
    return labels


def annotation_files(labels: Path, patterns: dict[str, list[str]], subject: str, session: str | None) -> tuple[Path | None, Path | None]:
    """``(mask, markers)`` of one subject/session under ``labels`` (either may be None)."""
    return (_companion(labels, patterns["mask"], subject, session), _companion(labels, patterns["markers"], subject, session))


def discover_subjects(name: str, dataset: dict) -> list[SubjectFiles]:
    """All subjects of dataset ``name`` (config entry ``dataset``), sorted by key.

    Raises :class:`InputError` when no magnitude image matches, or when two files claim the
    same subject/session.
    """
    root = Path(dataset["bids_dir"]).expanduser()
    if not root.is_dir():
        raise InputError(f"dataset '{name}': bids_dir {root} does not exist or is not a folder. Fix datasets.{name}.bids_dir in your config.")
    patterns = patterns_for(dataset)
    labels = annotation_root(name, dataset, root)
    found: dict[str, SubjectFiles] = {}
    duplicates: list[str] = []
    magnitudes, odd = _matches(root, patterns["magnitude"])
    if odd:
        raise InputError(f"dataset '{name}': {len(odd)} file(s) fit the wildcards of patterns.magnitude but not with BIDS "
                         "labels (letters and digits only in {subject} and {session}: no '_', space or accent): "
                         + ", ".join(odd[:10]) + (" ..." if len(odd) > 10 else "")
                         + ". Rename them (e.g. sub-01a), or, if they carry other entities (acq-, run-), set datasets."
                         + f"{name}.patterns.magnitude to include them (e.g. sub-{{subject}}/anat/sub-{{subject}}_acq-*"
                         "_part-mag_swi.nii.gz) or to leave them out. No file is skipped in silence.")
    with_phase = has_phase(dataset)
    for path, subject, session in magnitudes:
        phase = (_companion(root, patterns["phase"], subject, session) or expected_path(root, patterns["phase"], subject, session)
                 if with_phase else None)
        files = SubjectFiles(subject, session, Path(path), phase, *annotation_files(labels, patterns, subject, session))
        if files.key in found:
            duplicates.append(f"sub-{files.key}: {found[files.key].magnitude} and {path}")
            continue
        found[files.key] = files
    if not with_phase and found:
        ignored = len(_matches(root, patterns["phase"])[0])
        if ignored:
            log.warning("dataset '%s': phase: false, so its %d phase file(s) are not read", name, ignored)
    for kind in ("phase", "mask", "markers") if with_phase else ("mask", "markers"):
        companions, _ = _matches(labels if kind in ("mask", "markers") else root, patterns[kind])
        orphans = sorted(path for path, subject, session in companions
                         if (subject if session is None else f"{subject}_ses-{session}") not in found)
        if orphans and found:
            expected = Path(expected_path(root, patterns["magnitude"], *_entities(companions, orphans[0])))
            raise InputError(f"dataset '{name}': {kind} file(s) without a magnitude image: " + ", ".join(orphans[:10])
                             + (" ..." if len(orphans) > 10 else "") + f". Add the magnitude (expected at {expected}"
                             + _folder_holds(_subject_folder(expected)) + f"), remove the {kind} file, or fix datasets.{name}."
                             "patterns.magnitude.")
    if duplicates:
        raise InputError(f"dataset '{name}': duplicate subject ids (two magnitude images for one subject/session): "
                         + "; ".join(duplicates) + ". Keep one file per subject/session or narrow datasets."
                         + f"{name}.patterns.magnitude.")
    if not found:
        raise InputError(f"dataset '{name}': no subjects found in {root}: no file matches "
                         + " or ".join(patterns["magnitude"])
                         + f". Check bids_dir, or set datasets.{name}.patterns.magnitude to your file layout.")
    misnamed = [path for files in found.values() for kind, have in (("mask", files.mask), ("markers", files.markers))
                if have is None for path in _misnamed(labels, patterns[kind], files.subject, files.session)]
    if misnamed:
        raise InputError(f"dataset '{name}': annotation file(s) named like a CMB mask or markers table but in a form cmbflow "
                         f"does not read: {', '.join(misnamed[:10])}{' ...' if len(misnamed) > 10 else ''}. Masks are NIfTI "
                         "(.nii.gz or .nii); markers are a tab-separated .tsv with columns x y z in world mm (RAS+), or "
                         "Slicer's .mrk.json or .fcsv. Convert them (a .csv table: save it tab-separated as .tsv), or remove them.")
    subjects = {files.subject for files in found.values()}
    for folder in sorted(p for p in root.glob("sub-*") if p.is_dir() and p.name[4:] not in subjects):
        log.warning("dataset '%s': %s is skipped: no file in it matches %s%s. Add its magnitude image, or set datasets.%s."
                    "patterns.magnitude to include it.", name, folder, " or ".join(patterns["magnitude"]),
                    _folder_holds(folder), name)
    return [found[key] for key in sorted(found)]


def _misnamed(root: Path | None, patterns: list[str], subject: str, session: str | None) -> list[str]:
    """Files under ``root`` named as ``patterns`` would name this subject's annotation, but with
    another extension (a ``.csv`` markers table, an ``.mha`` mask); JSON sidecars are legal."""
    if root is None:
        return []
    found = set()
    for pattern in patterns:
        filled = _fill(pattern, subject, session)
        if filled is None:
            continue
        stem = filled.removesuffix(".gz").removesuffix(".nii").removesuffix(".tsv")
        found.update(path for path in glob.glob(glob.escape(str(root)) + "/" + stem + ".*")
                     if not path.endswith((".json", ".nii", ".nii.gz", *MARKER_EXTENSIONS)))
    return sorted(found)


def _subject_folder(path: Path) -> Path:
    """The ``sub-*`` folder above ``path`` (BIDS), else ``path``'s own folder."""
    return next((parent for parent in path.parents if parent.name.startswith("sub-")), path.parent)


def _folder_holds(folder: Path, most: int = 5) -> str:
    """`` (sub-01/ holds: a, b ...)`` listing up to ``most`` files below ``folder``, so that a
    misnamed file (``.NII.GZ``, another datatype folder, a session) shows in the message."""
    if not folder.is_dir():
        return f" (there is no folder {folder})"
    names = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    return f" ({folder.name}/ holds: {', '.join(names[:most])}{' ...' if len(names) > most else ''})" if names else \
        f" ({folder.name}/ is empty)"
