"""The per-subject report a clinician or rater reads: one PDF and one HTML page per subject.

Each report holds: who and what (dataset, subject, session, the input files and their
SHA-256), the MARS census (lobar / deep / infratentorial / total), one row per detected CMB
(world mm RAS+ of the subject's original image, region, diameter, score), a thumbnail of each
CMB in three planes with the region map overlaid, the registration QC (its picture and
numbers), the models used (names, SHA-256 of their cards and weights, the operating threshold
and where it came from) and a research-use notice. A subject without CMBs says so.

Rendered with matplotlib (``PdfPages``) so that no other layout engine is needed; the HTML
page carries the same tables, the thumbnail pages as PNG and the registration QC picture.
"""

from __future__ import annotations

import base64
import html
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.backends.backend_pdf import PdfPages  # noqa: E402
from matplotlib.patches import Ellipse  # noqa: E402

import cmbflow  # noqa: E402
from cmbflow.paths import subject_report  # noqa: E402
from cmbflow.figures.qc import REGION_COLOURS  # noqa: E402
from cmbflow.io.checksum import sha256  # noqa: E402
from cmbflow.io.coords import world_to_voxel  # noqa: E402
from cmbflow.localization.census import COUNTED_REGIONS  # noqa: E402
from cmbflow.localization.regions import read_chosen_regions  # noqa: E402

log = logging.getLogger(__name__)

NOTICE = ("For research use only. Not a medical device; not for diagnosis or treatment decisions. "
          "Every detection must be reviewed by a qualified reader on the original images.")
THUMBNAIL_MM = 40.0  # field of view of each thumbnail
CMBS_PER_PAGE = 6
PLANES = (("axial", 2), ("coronal", 1), ("sagittal", 0))  # plane name, the model-ready axis it cuts (RAS+)


@dataclass
class SubjectFiles:
    """What one subject's report reads: its ``inputs`` (name -> the user's file), the
    preprocessed ``swi`` (model-ready grid), the region ``maps`` (name -> region map of that
    grid), and the registration ``quality`` table and ``qc`` picture."""

    inputs: dict[str, str]
    swi: str
    maps: dict[str, str]
    quality: str
    qc: str


@dataclass
class ReportModels:
    """The models behind the census: ``detector`` and ``localizer`` (name -> model folder
    files ``card`` / ``weights``), the ``threshold`` and its ``source``."""

    detector: tuple[str, dict[str, str]]
    localizer: dict[str, str] | None
    threshold: float
    source: str
    rows: list[dict] = field(default_factory=list)

    def table(self) -> pd.DataFrame:
        """One row per model: name, file, SHA-256 (read once)."""
        if not self.rows:
            models = [(self.detector[0], self.detector[1])] + ([("localizer", self.localizer)] if self.localizer else [])
            self.rows = [{"model": name, "file": Path(files[kind]).name, "sha256": sha256(files[kind])}
                         for name, files in models for kind in ("card", "weights")]
        return pd.DataFrame(self.rows)


def _identification(dataset: str, key: str, files: SubjectFiles) -> pd.DataFrame:
    subject, _, session = key.partition("_ses-")  # a key names the session of a longitudinal subject
    rows = [{"item": "dataset", "value": dataset}, {"item": "subject", "value": subject}]
    if session:
        rows.append({"item": "session", "value": session})
    rows += [{"item": f"{name} (SHA-256)", "value": f"{Path(path).name}  {sha256(path)[:16]}…"}
             for name, path in files.inputs.items() if path]
    return pd.DataFrame(rows)


def _counts_row(counts: pd.DataFrame, key: str) -> pd.DataFrame:
    row = counts[counts["subject"].astype(str) == key]
    values = row.iloc[0] if len(row) else pd.Series(0, index=[*COUNTED_REGIONS, "total"])
    return pd.DataFrame([{region: int(values[region]) for region in (*COUNTED_REGIONS, "total")}])


def _cmb_rows(cmbs: pd.DataFrame) -> pd.DataFrame:
    table = cmbs.reset_index(drop=True)
    return pd.DataFrame({"CMB": np.arange(1, len(table) + 1), "x (mm)": table["x"].round(1), "y (mm)": table["y"].round(1),
                         "z (mm)": table["z"].round(1), "region": table["region"],
                         "diameter (mm)": table["diameter_mm"].round(1), "score": table["score"].round(3)})


def _draw_table(ax, table: pd.DataFrame, title: str, font: float = 8.0) -> None:
    ax.axis("off")
    ax.set_title(title, loc="left", fontsize=10, fontweight="bold")
    if table.empty:
        return
    drawn = ax.table(cellText=table.astype(str).to_numpy(), colLabels=list(table.columns), loc="upper left", cellLoc="left")
    drawn.auto_set_font_size(False)
    drawn.set_fontsize(font)
    drawn.scale(1.0, 1.25)


def _tables(dataset: str, key: str, files: SubjectFiles, counts: pd.DataFrame, cmbs: pd.DataFrame,
            models: ReportModels) -> dict[str, pd.DataFrame]:
    """The report's tables, built once for its PDF and its HTML (the inputs' checksums read whole files)."""
    return {"identification": _identification(dataset, key, files), "census": _counts_row(counts, key),
            "cmbs": _cmb_rows(cmbs), "quality": _quality_numbers(files), "models": models.table()}


def _summary_page(dataset: str, key: str, tables: dict[str, pd.DataFrame], models: ReportModels):
    fig = plt.figure(figsize=(8.27, 11.69))  # A4
    fig.text(0.05, 0.965, f"Cerebral microbleed report: {dataset}, subject {key}", fontsize=14, fontweight="bold")
    fig.text(0.05, 0.945, f"cmbflow {cmbflow.__version__}; detector {models.detector[0]} at score >= {models.threshold:.3f}",
             fontsize=9)
    fig.text(0.05, 0.925, NOTICE, fontsize=8, color="darkred", wrap=True)
    cmbs = tables["cmbs"]
    layout = [(0.80, 0.10, tables["identification"], "Identification"),
              (0.71, 0.06, tables["census"], "MARS census (CMBs per region)"),
              (0.36, 0.33, cmbs.head(20), "Detected CMBs (world mm RAS+ of the original image)"),
              (0.17, 0.16, tables["models"].assign(sha256=lambda t: t["sha256"].str[:16] + "…"), "Models")]
    for bottom, height, table, title in layout:
        _draw_table(fig.add_axes([0.05, bottom, 0.9, height]), table, title)
    if cmbs.empty:
        fig.text(0.05, 0.66, f"No CMB detected at the operating threshold ({models.threshold:.3f}).", fontsize=11)
    elif len(cmbs) > 20:
        fig.text(0.05, 0.355, f"... and {len(cmbs) - 20} more (the census table lists them all)", fontsize=8)
    fig.text(0.05, 0.13, f"Operating threshold {models.threshold:.3f}: {models.source}", fontsize=7, wrap=True)
    return fig


def _thumbnail_pages(files: SubjectFiles, cmbs: pd.DataFrame, choice: str, margin_mm: float) -> list:
    """Pages of :data:`CMBS_PER_PAGE` CMBs, each in three planes through its centre, the region
    map (localization ``choice``) overlaid and a circle of its diameter."""
    if cmbs.empty:
        return []
    image = nib.load(files.swi)
    swi = np.asarray(image.dataobj, np.float32)
    codes, _ = read_chosen_regions(files.maps, choice, margin_mm)
    spacing = np.asarray(image.header.get_zooms()[:3], float)
    centres = world_to_voxel(image.affine, cmbs[["x", "y", "z"]].to_numpy(float))
    half = np.ceil(THUMBNAIL_MM / 2 / spacing).astype(int)
    pages = []
    for start in range(0, len(cmbs), CMBS_PER_PAGE):
        rows = cmbs.iloc[start:start + CMBS_PER_PAGE].reset_index(drop=True)
        height = 1.9 * len(rows) + 0.9
        fig, axes = plt.subplots(len(rows), 3, figsize=(8.27, height), squeeze=False)
        fig.subplots_adjust(top=1 - 0.8 / height)  # room for the two title lines above the plane names
        for row, (n, cmb) in enumerate(rows.iterrows()):
            centre = np.clip(np.rint(centres[start + row]).astype(int), 0, np.array(swi.shape) - 1)
            for column, (plane, axis) in enumerate(PLANES):
                ax = axes[row][column]
                index = [slice(max(c - h, 0), c + h + 1) for c, h in zip(centre, half)]
                index[axis] = centre[axis]
                picture, overlay = swi[tuple(index)].T, codes[tuple(index)].T
                shown = [a for a in range(3) if a != axis]
                ax.imshow(picture, cmap="gray", origin="lower", vmin=0, vmax=1, aspect=spacing[shown[1]] / spacing[shown[0]])
                ax.imshow(np.ma.masked_equal(overlay, 0), cmap=REGION_COLOURS, vmin=0, vmax=3, origin="lower",
                          interpolation="nearest", alpha=0.35, aspect=spacing[shown[1]] / spacing[shown[0]])
                # a ring 1.5 mm outside the CMB's diameter, round in mm on anisotropic voxels
                radius_mm = cmb["diameter_mm"] / 2 + 1.5
                ax.add_patch(Ellipse([centre[a] - index[a].start for a in shown], 2 * radius_mm / spacing[shown[0]],
                                     2 * radius_mm / spacing[shown[1]], fill=False, color="yellow", linewidth=1.0))
                ax.set_xticks([])
                ax.set_yticks([])
                if column == 0:
                    ax.set_ylabel(f"CMB {start + row + 1}\n{cmb['region']}, {cmb['score']:.2f}", fontsize=8)
                if row == 0:
                    ax.set_title(plane, fontsize=9)
        fig.suptitle("Detections, 40 mm around each on the preprocessed SWI, the patient's right on the right\n"
                     "(regions: orange lobar, green deep, red infratentorial)", fontsize=9)
        pages.append(fig)
    return pages


def _quality_page(files: SubjectFiles, quality: pd.DataFrame):
    fig = plt.figure(figsize=(8.27, 11.69))
    fig.text(0.05, 0.965, "Registration QC (template regions on this subject)", fontsize=12, fontweight="bold")
    _draw_table(fig.add_axes([0.05, 0.62, 0.9, 0.32]), quality, "Measures")
    if Path(files.qc).is_file():
        ax = fig.add_axes([0.05, 0.05, 0.9, 0.55])
        ax.imshow(plt.imread(files.qc))
        ax.axis("off")
    return fig


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    return base64.b64encode(buffer.getvalue()).decode()


def _quality_numbers(files: SubjectFiles) -> pd.DataFrame:
    quality = pd.read_csv(files.quality, sep="\t", dtype=str).drop(columns=["subject"], errors="ignore")
    return quality.T.reset_index().set_axis(["measure", "value"], axis=1) if len(quality) else pd.DataFrame()


def _html(dataset: str, key: str, files: SubjectFiles, tables: dict[str, pd.DataFrame], models: ReportModels,
          thumbnails: list[str]) -> str:
    """The report as one HTML page: the tables as HTML, the thumbnail pages and the registration QC picture as PNG."""
    qc = base64.b64encode(Path(files.qc).read_bytes()).decode() if Path(files.qc).is_file() else None
    parts = [f"<h1>Cerebral microbleed report: {html.escape(dataset)}, subject {html.escape(key)}</h1>",
             f"<p><strong>{html.escape(NOTICE)}</strong></p>",
             "<h2>Identification</h2>", tables["identification"].to_html(index=False),
             "<h2>MARS census</h2>", tables["census"].to_html(index=False),
             "<h2>Detected CMBs (world mm RAS+ of the original image)</h2>",
             tables["cmbs"].to_html(index=False) if len(tables["cmbs"]) else
             f"<p>No CMB detected at the operating threshold ({models.threshold:.3f}).</p>",
             *[f'<img src="data:image/png;base64,{p}" style="max-width:100%">' for p in thumbnails],
             "<h2>Registration QC</h2>", tables["quality"].to_html(index=False),
             *([f'<img src="data:image/png;base64,{qc}" style="max-width:100%">'] if qc else []),
             "<h2>Models</h2>", tables["models"].to_html(index=False),
             f"<p>Operating threshold {models.threshold:.3f}: {html.escape(models.source)}</p>"]
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>CMB report " + html.escape(f"{dataset} {key}") +
            "</title></head><body style='font-family:sans-serif'>" + "\n".join(parts) + "</body></html>\n")


def write_subject_report(dataset: str, key: str, files: SubjectFiles, counts: pd.DataFrame, cmbs: pd.DataFrame,
                         models: ReportModels, pdf: str | Path, html_path: str | Path, choice: str = "either",
                         margin_mm: float = 0.0) -> None:
    """One subject's report as ``pdf`` and ``html_path``; ``cmbs``: its census rows, best first."""
    tables = _tables(dataset, key, files, counts, cmbs, models)
    thumbnails = _thumbnail_pages(files, cmbs, choice, margin_mm)
    Path(pdf).parent.mkdir(parents=True, exist_ok=True)
    pictures = []
    with PdfPages(pdf, metadata={"Title": f"CMB report {dataset} {key}", "Creator": f"cmbflow {cmbflow.__version__}"}) as document:
        for fig in [_summary_page(dataset, key, tables, models), *thumbnails, _quality_page(files, tables["quality"])]:
            document.savefig(fig)
            if any(fig is page for page in thumbnails):
                pictures.append(_png(fig))
            plt.close(fig)
    Path(html_path).write_text(_html(dataset, key, files, tables, models, pictures))


def write_subject_reports(dataset: str, subjects: dict[str, SubjectFiles], cmbs_table: str, counts_table: str,
                          models: ReportModels, folder: str | Path, choice: str = "either", margin_mm: float = 0.0) -> None:
    """The report of every subject of ``subjects`` (key -> files) into ``folder``
    (``sub-<key>_report.pdf`` and ``.html``), from the census tables of one variant."""
    cmbs = pd.read_csv(cmbs_table, sep="\t", dtype={"subject": str})
    counts = pd.read_csv(counts_table, sep="\t", dtype={"subject": str})
    for key, files in subjects.items():
        write_subject_report(dataset, key, files, counts, cmbs[cmbs["subject"] == key], models,
                             Path(folder) / Path(subject_report(dataset, key, "pdf")).name,
                             Path(folder) / Path(subject_report(dataset, key, "html")).name, choice, margin_mm)
    log.info("%s: %d subject reports in %s", dataset, len(subjects), folder)
