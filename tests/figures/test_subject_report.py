import hashlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from pypdf import PdfReader  # noqa: E402

from cmbflow.figures.subject_report import NOTICE, ReportModels, SubjectFiles, write_subject_reports  # noqa: E402


@pytest.fixture
def report_inputs(tmp_path):
    """Two subjects on a 1 x 1 x 2 mm model-ready grid: ``01_ses-a`` with two CMBs (lobar, deep), ``02`` with none."""
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    affine[:3, 3] = [-20, -20, -20]
    swi = np.full((40, 40, 20), 0.7, np.float32)
    regions = np.ones((40, 40, 20), np.int16)
    regions[20:, :, :] = 2
    subjects = {}
    for key in ("01_ses-a", "02"):
        folder = tmp_path / key
        folder.mkdir()
        for name, volume in (("swi", swi), ("atlas", regions), ("magnitude", swi * 100)):
            nib.save(nib.Nifti1Image(volume, affine), folder / f"{name}.nii.gz")
        pd.DataFrame([{"subject": key, "mattes_mi": -0.9, "brain_dice_vs_foreground": 0.93}]).to_csv(folder / "quality.tsv", sep="\t", index=False)
        fig, ax = plt.subplots()
        ax.imshow(swi[:, :, 10])
        fig.savefig(folder / "qc.png")
        plt.close(fig)
        subjects[key] = SubjectFiles(inputs={"magnitude": str(folder / "magnitude.nii.gz")}, swi=str(folder / "swi.nii.gz"),
                                     maps={"atlas": str(folder / "atlas.nii.gz")}, quality=str(folder / "quality.tsv"),
                                     qc=str(folder / "qc.png"))
    cmbs = pd.DataFrame({"subject": "01_ses-a", "candidate": ["c1", "c2"], "x": [-10.5, 8.0], "y": [0.0, 4.0], "z": [0.0, 6.0],
                         "diameter_mm": [4.0, 2.5], "score": [0.91, 0.62], "region": ["lobar", "deep"]})
    counts = pd.DataFrame({"subject": ["01_ses-a", "02"], "lobar": [1, 0], "deep": [1, 0], "infratentorial": [0, 0], "total": [2, 0]})
    cmbs.to_csv(tmp_path / "cmbs.tsv", sep="\t", index=False)
    counts.to_csv(tmp_path / "counts.tsv", sep="\t", index=False)
    (tmp_path / "model.pt").write_bytes(b"weights")
    (tmp_path / "model_card.json").write_text("{}")
    models = ReportModels(("rpn_ffm_hspl", {"card": str(tmp_path / "model_card.json"), "weights": str(tmp_path / "model.pt")}),
                          None, 0.45, "validation subjects of training")
    return tmp_path, subjects, models


def page_text(path, page: int) -> str:
    return " ".join(PdfReader(path).pages[page].extract_text().split())


def test_every_subject_gets_a_pdf_and_html_with_its_census_and_identification(report_inputs):
    root, subjects, models = report_inputs
    out = root / "reports"
    write_subject_reports("site", subjects, str(root / "cmbs.tsv"), str(root / "counts.tsv"), models, out, choice="atlas")
    pdf = out / "sub-01_ses-a_report.pdf"
    reader = PdfReader(pdf)
    assert len(reader.pages) == 3  # summary, one page of thumbnails, registration QC
    first = page_text(pdf, 0)
    assert "lobar deep infratentorial total 1 1 0 2" in first  # the census row of this subject
    assert "1 -10.5 0.0 0.0 lobar 4.0 0.91" in first and "2 8.0 4.0 6.0 deep 2.5 0.62" in first  # one row per CMB, best first
    assert "subject 01" in first and "session a" in first
    magnitude = hashlib.sha256(open(subjects["01_ses-a"].inputs["magnitude"], "rb").read()).hexdigest()
    assert magnitude[:16] in first
    assert hashlib.sha256(b"weights").hexdigest()[:16] in first and "0.450" in first
    assert "For research use only" in first
    assert "CMB 1" in page_text(pdf, 1) and "mattes_mi" in page_text(pdf, 2)
    page = (out / "sub-01_ses-a_report.html").read_text()
    assert NOTICE in page and page.count("data:image/png;base64,") == 2  # the thumbnails and the registration QC
    assert "<td>-10.5</td>" in page and "<td>deep</td>" in page


def test_a_subject_without_cmbs_says_so(report_inputs):
    root, subjects, models = report_inputs
    out = root / "reports"
    write_subject_reports("site", {"02": subjects["02"]}, str(root / "cmbs.tsv"), str(root / "counts.tsv"), models, out, choice="atlas")
    pdf = out / "sub-02_report.pdf"
    assert len(PdfReader(pdf).pages) == 2  # no thumbnails
    assert "0 0 0 0" in page_text(pdf, 0) and "No CMB detected at the operating threshold (0.450)" in page_text(pdf, 0)
    assert "No CMB detected" in (out / "sub-02_report.html").read_text()
    assert not (out / "sub-01_ses-a_report.pdf").exists()
