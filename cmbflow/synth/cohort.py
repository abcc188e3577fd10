"""Writing the synthetic cohort in the input contract's layout (BIDS + cmb_labels derivatives)."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from cmbflow.atlas import build_region_atlas, load_template
from cmbflow.io.nifti import load_volume, save_volume
from cmbflow.synth.randomize import Appearance, Randomization
from cmbflow.sites import SiteParams
from cmbflow.synth.subject import Geometry, SyntheticSubject, Simulator
from cmbflow.synth.tissue import build_tissue_maps, load_tissue_maps, save_tissue_maps
from cmbflow.synth.warp import SubjectWarp

log = logging.getLogger(__name__)

MAGNITUDE_INT16_GAIN = 4000.0  # scanner-like integer magnitude: WM near 2000


def subject_rng(seed: int, site: str, subject: str) -> np.random.Generator:
    """Independent, reproducible stream per (seed, site, subject), whatever the job order."""
    digest = int.from_bytes(hashlib.sha256(f"{site}/{subject}".encode()).digest()[:8], "little")
    return np.random.default_rng(np.random.SeedSequence([seed, digest]))


def make_simulator(atlas_path: str | Path | None = None, workers: int = 1, contrast: str = "t1",
                   tissue_path: str | Path | None = None, **atlas_options) -> Simulator:
    """Simulator over the ICBM template with a MARS atlas: the one written by the atlas rule
    (``atlas_path``), or built in memory with ``atlas_options`` of
    :func:`cmbflow.atlas.build_region_atlas` when no path is given. ``contrast``: the
    template image that shapes the anatomy (:func:`cmbflow.synth.tissue.build_tissue_maps`);
    ``tissue_path``: those maps as :func:`cmbflow.synth.tissue.save_tissue_maps` wrote them
    (built here when not given)."""
    if atlas_path is None or tissue_path is None:
        template = load_template()
    if atlas_path is None:
        regions = build_region_atlas(template, **atlas_options)
    else:
        regions, _ = load_volume(atlas_path, dtype=np.uint8)
    tissue = build_tissue_maps(template, contrast) if tissue_path is None else load_tissue_maps(tissue_path, contrast)
    return Simulator(tissue, regions, workers=workers)


def write_tissue_maps(contrast: str, path: str | Path) -> None:
    """Build the template's tissue maps from its ``contrast`` image and write them (rule
    synthesize_tissue_maps): once per run instead of once per simulated subject."""
    save_tissue_maps(build_tissue_maps(load_template(), contrast), contrast, path)


def store_phase(phase: np.ndarray, storage: str) -> np.ndarray:
    """Phase as the site stores it: float32 radians, or signed scanner codes -4096..4095 (int16)."""
    if storage == "radians":
        return phase.astype(np.float32)
    codes = np.floor((phase + np.pi) / (2 * np.pi) * 8192) - 4096
    return np.clip(codes, -4096, 4095).astype(np.int16)


def store_magnitude(magnitude: np.ndarray, storage: str) -> np.ndarray:
    """Magnitude as float32, or scanner-like int16 (fixed gain, clipped)."""
    if storage == "float32":
        return magnitude.astype(np.float32)
    return np.clip(np.rint(magnitude * MAGNITUDE_INT16_GAIN), 0, 32767).astype(np.int16)


def write_subject(subject: SyntheticSubject, site: SiteParams, outputs: dict[str, str]) -> None:
    """Write one simulated subject to the paths of :func:`cmbflow.paths.synth_subject_files`."""
    save_volume(outputs["magnitude"], store_magnitude(subject.swi, site.magnitude_storage), subject.affine)
    save_volume(outputs["phase"], store_phase(subject.phase, site.phase_storage), subject.affine)
    save_volume(outputs["mask"], subject.cmb_labels, subject.affine, dtype=np.int16)
    save_volume(outputs["regions"], subject.regions, subject.affine, dtype=np.uint8)
    save_volume(outputs["brainmask"], subject.brain_mask, subject.affine, dtype=np.uint8)
    for key, table in (("markers", subject.markers), ("mimics", subject.mimics)):
        Path(outputs[key]).parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(outputs[key], sep="\t", index=False, float_format="%.3f")


def draw_subject(site: SiteParams, subject: str, seed: int,
                 randomization: Randomization | None = None) -> tuple[SiteParams, Appearance, np.random.Generator]:
    """The acquisition and appearance of one subject, and the stream that simulates it: drawn
    from ``randomization`` for a ``randomize`` site, else the site's own."""
    rng = subject_rng(seed, site.draws_of or site.name, subject)  # a twin site draws its original's subjects
    if site.randomize:
        acquisition, appearance = (randomization or Randomization.defaults()).draw(site, rng)
        return acquisition, appearance, rng
    return site, Appearance.of_site(site), rng


def acquisition_record(site: SiteParams, appearance: Appearance) -> dict:
    """BIDS-like sidecar of a simulated acquisition (BIDS units: seconds, tesla) and its appearance."""
    return {"MagneticFieldStrength": site.b0_tesla, "EchoTime": round(site.te_ms / 1000, 6),
            "VoxelSizeMm": [round(float(v), 4) for v in site.voxel_mm], "ObliqueDeg": round(site.oblique_deg, 3),
            "Orientation": site.orientation, "SNR": round(site.snr, 3), "Randomized": site.randomize,
            "cmbflow": {"bias_amplitude": site.bias_amplitude, "background_field_ppm": site.background_field_ppm,
                        "homodyne_window_fraction": site.homodyne_window_fraction, "cmb_chi_ppm": list(site.cmb_chi_ppm),
                        "medullary_veins": site.medullary_veins, "pial_veins": site.pial_veins,
                        "anatomy_contrast": site.anatomy_contrast, **appearance.record()}}


def synthesize_subject(simulator: Simulator, site: SiteParams, subject: str, seed: int, outputs: dict[str, str],
                       randomization: Randomization | None = None) -> SyntheticSubject:
    """Simulate and write one subject (and its acquisition sidecar); returns the simulated subject."""
    acquisition, appearance, rng = draw_subject(site, subject, seed, randomization)
    simulated = simulator.simulate(acquisition, rng, appearance=appearance)
    write_subject(simulated, acquisition, outputs)
    Path(outputs["acquisition"]).write_text(json.dumps(acquisition_record(acquisition, appearance), indent=2) + "\n")
    log.info("site %s sub-%s: %d CMBs, %d calcifications, %d vein points; grid %s at %s mm, %.1f T, TE %.1f ms, SNR %.0f",
             site.name, subject, len(simulated.markers), int((simulated.mimics["kind"] == "calcification").sum()),
             int(simulated.mimics["kind"].str.endswith("vein").sum()), simulated.swi.shape,
             tuple(round(float(v), 2) for v in acquisition.voxel_mm), acquisition.b0_tesla, acquisition.te_ms, acquisition.snr)
    return simulated


def synthesize_template(site: SiteParams, atlas_path: str, outputs: dict[str, str], workers: int = 1,
                        tissue_path: str | None = None) -> None:
    """The canonical (un-warped) SWI-like template on the ICBM grid: no lesions, no noise;
    anatomy and acquisition of ``site`` (``tissue_path``: the tissue maps of its
    ``anatomy_contrast``, written by :func:`write_tissue_maps`).

    ``outputs`` holds paths for ``swi``, ``phase``, ``brainmask`` and ``regions``.
    """
    simulator = make_simulator(atlas_path, workers, contrast=site.anatomy_contrast, tissue_path=tissue_path)
    template = simulator.tissue
    geometry = Geometry(template.affine, template.m0.shape, (1, 1, 1))
    warp = SubjectWarp.identity(simulator.template_centre)
    simulated = simulator.simulate(site, np.random.default_rng(0), warp=warp, geometry=geometry,
                                   with_sources=False, with_noise=False)
    save_volume(outputs["swi"], simulated.swi, template.affine, dtype=np.float32)
    save_volume(outputs["phase"], simulated.phase, template.affine, dtype=np.float32)
    save_volume(outputs["brainmask"], simulated.brain_mask, template.affine, dtype=np.uint8)
    save_volume(outputs["regions"], simulated.regions, template.affine, dtype=np.uint8)


def write_dataset_files(site: SiteParams, root: str | Path, marker_files: list[str]) -> None:
    """``dataset_description.json`` and ``participants.tsv`` (with CMB counts) of a site."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    description = {
        "Name": f"cmbflow synthetic SWI cohort, site {site.name}",
        "BIDSVersion": "1.9.0",
        "DatasetType": "raw",
        "GeneratedBy": [{"Name": "cmbflow synth", "Description": "physics-based SWI simulation"}],
        "Acquisition": {"VoxelSizeMm": list(site.voxel_mm), "EchoTimeMs": site.te_ms, "FieldStrengthT": site.b0_tesla,
                        "SNR": site.snr, "Orientation": site.orientation, "ObliqueDeg": site.oblique_deg,
                        "PhaseStorage": site.phase_storage, "PhaseSign": site.phase_sign},
    }
    (root / "dataset_description.json").write_text(json.dumps(description, indent=2) + "\n")
    rows = []
    for path in marker_files:
        markers = pd.read_csv(path, sep="\t")
        subject = Path(path).name.split("_")[0]
        counts = markers["region"].value_counts() if len(markers) else pd.Series(dtype=int)
        rows.append({"participant_id": subject, "n_cmb": len(markers),
                     **{f"n_{r}": int(counts.get(r, 0)) for r in ("lobar", "deep", "infratentorial")}})
    pd.DataFrame(rows).to_csv(root / "participants.tsv", sep="\t", index=False)
