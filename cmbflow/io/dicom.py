"""DICOM in: a subject's folder converted by dcm2niix (the PyPI wheel ships the binary),
its magnitude and phase series chosen by their BIDS sidecars, written in our input contract.

Selection reads what dcm2niix writes into each series' JSON sidecar: ``SeriesDescription``
(shell pattern), ``ImageType`` (``M``/``MAGNITUDE`` or ``P``/``PHASE``), ``SeriesNumber``,
``EchoNumber`` and ``EchoTime``. dcm2niix keeps the echoes of a multi-echo series apart
(``_e1``, ``_e2``; it sorts by echo as well as by instance number, which echoes share), so
an echo is chosen by number (``echo``: N, ``first``, ``last``) or by the echo time nearest
``te_ms``. The magnitude of several echoes can instead be combined (``combine_echoes: rms``,
root of the mean square, the usual multi-echo SWI magnitude); the phase always comes from
one echo, the chosen one (or the last, where TE and so susceptibility contrast is highest).
A dataset without phase (config ``phase: false``) converts the magnitude alone.
The chosen files are copied unchanged (voxels and header as dcm2niix wrote them).
"""

from __future__ import annotations

import fnmatch
import json
import logging
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cmbflow.io.phase import field_map_marks
from cmbflow.io.nifti import InputError, load_volume, save_volume
from cmbflow.settings import schema_defaults

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Series:
    """One converted series (one echo): its NIfTI, sidecar and the fields selection reads."""

    image: Path
    sidecar: dict
    description: str
    number: int
    kind: str  # "magnitude", "phase" or "other"
    echo: int
    te_ms: float

    def describe(self) -> str:
        return (f"series {self.number} '{self.description}' {self.kind} echo {self.echo} TE {self.te_ms:g} ms "
                f"({self.image.name})")


def _kind(image_type: list[str], units: str = "") -> str:
    """``magnitude``, ``phase``, ``field map`` (a B0 map in Hz, as GE and Philips export: not a
    phase, and never taken for one) or ``other``, from a sidecar's ImageType and Units."""
    types = {str(t).upper() for t in image_type}
    if field_map_marks(list(image_type), units):
        return "field map"
    if types & {"P", "PHASE"}:
        return "phase"
    if types & {"M", "MAGNITUDE"}:
        return "magnitude"
    return "other"


def dcm2niix_binary() -> str:
    """Path of the dcm2niix executable (installed with the ``dcm2niix`` wheel)."""
    binary = shutil.which("dcm2niix")
    if binary is None:
        raise InputError("dcm2niix is not installed: pip install dcm2niix (the wheel ships the binary).")
    return binary


def convert_folder(folder: str | Path, out_dir: str | Path) -> list[Series]:
    """Convert every DICOM series under ``folder`` (searched recursively) into ``out_dir``
    with dcm2niix (gzipped NIfTI + BIDS sidecar per series and echo); return them."""
    folder, out_dir = Path(folder), Path(out_dir)
    if not folder.is_dir():
        raise InputError(f"{folder}: DICOM folder not found. Fix datasets.<name>.dicom_dir or the subject folder.")
    out_dir.mkdir(parents=True, exist_ok=True)
    result = subprocess.run([dcm2niix_binary(), "-z", "y", "-b", "y", "-ba", "n", "-f", "%s_%d", "-o", str(out_dir),
                             str(folder)], capture_output=True, text=True)
    log.info("dcm2niix %s:\n%s", folder, result.stdout.strip())
    series = []
    for sidecar_path in sorted(out_dir.glob("*.json")):
        sidecar = json.loads(sidecar_path.read_text())
        image = sidecar_path.with_suffix(".nii.gz")
        if not image.exists():
            continue
        series.append(Series(image, sidecar, str(sidecar.get("SeriesDescription", "")), int(sidecar.get("SeriesNumber", 0)),
                             _kind(sidecar.get("ImageType", []), sidecar.get("Units", "")), int(sidecar.get("EchoNumber", 1)),
                             1000.0 * float(sidecar.get("EchoTime", 0.0))))
    if not series:
        raise InputError(f"{folder}: dcm2niix found no DICOM image to convert ({result.stderr.strip() or result.stdout.strip()[-300:]}). "
                         "Point dicom_dir at folders of DICOM files.")
    return series


def _one_per_series(candidates: list[Series], what: str, folder: Path, settings: dict, found: list[Series]) -> list[Series]:
    """The echoes of the one series that matches, or an error listing the candidates (or,
    with none, every series ``found``)."""
    numbers = sorted({s.number for s in candidates})
    if len(numbers) == 1:
        return sorted(candidates, key=lambda s: s.echo)
    listing = "; ".join(s.describe() for s in candidates)
    if not numbers:
        field_maps = what == "phase" and any(s.kind == "field map" for s in found)
        raise InputError(f"{folder}: no {what} series matches dicom settings {settings}. Found: "
                         f"{'; '.join(s.describe() for s in found) or 'none'}. Set datasets.<name>.dicom.series_description "
                         "(a shell pattern) or dicom.series_number."
                         + (" A B0 field map (Hz) is not the phase cmbflow reads: export the gradient-echo phase, or set "
                            "datasets.<name>.phase: false to run on SWI alone." if field_maps else ""))
    raise InputError(f"{folder}: {len(numbers)} {what} series match ({listing}). Choose one with "
                     "datasets.<name>.dicom.series_description (a shell pattern) or dicom.series_number.")


def _chosen_echo(echoes: list[Series], settings: dict, folder: Path) -> Series:
    if settings.get("te_ms") is not None:
        return min(echoes, key=lambda s: abs(s.te_ms - float(settings["te_ms"])))
    echo = settings["echo"]
    if echo == "first":
        return echoes[0]
    if echo == "last":
        return echoes[-1]
    for series in echoes:
        if series.echo == int(echo):
            return series
    raise InputError(f"{folder}: dicom.echo {echo} not found; echoes: {[s.echo for s in echoes]}. Fix datasets.<name>.dicom.echo.")


def select_series(series: list[Series], settings: dict, folder: Path, with_phase: bool = True) -> tuple[list[Series], Series | None]:
    """``(magnitude echoes to use, phase echo)`` chosen by ``settings`` (config
    ``datasets.<name>.dicom``: ``series_description``, ``series_number``, ``echo``,
    ``te_ms``, ``combine_echoes``); no phase (None) unless ``with_phase``."""
    settings = {**schema_defaults("datasets.*.dicom"), **settings}
    pattern = settings["series_description"]
    number = settings.get("series_number")
    matching = [s for s in series if fnmatch.fnmatch(s.description, pattern) and (number is None or s.number in np.atleast_1d(number))]
    magnitudes = _one_per_series([s for s in matching if s.kind == "magnitude"], "magnitude", folder, settings, series)
    magnitude = _chosen_echo(magnitudes, settings, folder)
    chosen = magnitudes if settings["combine_echoes"] == "rms" else [magnitude]
    if not with_phase:
        return chosen, None
    phases = _one_per_series([s for s in matching if s.kind == "phase"], "phase", folder, settings, series)
    # The phase of the magnitude's echo where the phase series has it (a phase-difference
    # series has one echo only: take it).
    phase = next((s for s in phases if s.echo == magnitude.echo), None) or _chosen_echo(phases, settings, folder)
    return chosen, phase


def convert_subject(folder: str | Path, settings: dict, outputs: dict[str, str]) -> dict:
    """Convert one subject's DICOM folder and write its ``magnitude`` and ``phase`` NIfTI
    (and ``magnitude_sidecar`` / ``phase_sidecar`` JSON) to ``outputs`` (no phase where
    ``outputs`` has none: a dataset without phase); the DICOM folder is only read. Returns a
    provenance record (what was chosen and why)."""
    folder = Path(folder)
    with tempfile.TemporaryDirectory(prefix="cmbflow-dcm2niix-") as scratch:
        series = convert_folder(folder, scratch)
        magnitudes, phase = select_series(series, settings, folder, with_phase="phase" in outputs)
        Path(outputs["magnitude"]).parent.mkdir(parents=True, exist_ok=True)
        if len(magnitudes) == 1:
            shutil.copyfile(magnitudes[0].image, outputs["magnitude"])
        else:
            volumes = [load_volume(s.image) for s in magnitudes]
            rms = np.sqrt(np.mean([v.astype(np.float64) ** 2 for v, _ in volumes], axis=0)).astype(np.float32)
            save_volume(outputs["magnitude"], rms, volumes[0][1])
        if phase is not None:
            shutil.copyfile(phase.image, outputs["phase"])
        provenance = {"source": str(folder), "converter": "dcm2niix", "settings": settings,
                      "magnitude": [s.describe() for s in magnitudes], "phase": phase.describe() if phase else "none",
                      "combined_echoes": "rms" if len(magnitudes) > 1 else "none"}
        for key, chosen in (("magnitude_sidecar", magnitudes[-1]), ("phase_sidecar", phase)):
            if chosen is not None:
                Path(outputs[key]).write_text(json.dumps({**chosen.sidecar, "cmbflow": provenance}, indent=2) + "\n")
    log.info("%s: magnitude %s; phase %s", folder, ", ".join(provenance["magnitude"]), provenance["phase"])
    return provenance
