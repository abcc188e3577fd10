"""Hospital-like inputs, one defect (or one unusual but legal property) each.

Every case goes through ``cmbflow validate`` (the same code as the workflow's validation
rule) and is either processed correctly or refused with one message naming the file (or
the setting) and the fix: never a traceback, and the input files stay byte-identical.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from cmbflow.cli import main
from tests.conftest import AFFINE, SHAPE, write_subject


def _snapshot(root):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def _nifti(path, data, affine=AFFINE, codes=1):
    image = nib.Nifti1Image(data, affine)
    image.set_sform(affine, code=codes)
    image.set_qform(affine, code=codes)
    nib.save(image, str(path))


def _uncompress(path):
    nib.save(nib.load(str(path)), str(path.with_suffix("")))
    path.unlink()


def _units(path, spatial):
    image = nib.load(str(path))
    image.header.set_xyzt_units(spatial, "sec")
    nib.save(nib.Nifti1Image(np.asanyarray(image.dataobj), image.affine, image.header), str(path))


def _singular(path):
    """A header whose sform and qform both give a singular affine (pixdim and srow_z zero)."""
    image = nib.load(str(path))
    data = np.asarray(image.dataobj, image.header.get_data_dtype())
    header = image.header.copy()
    header["srow_z"] = 0
    header["pixdim"][3] = 0
    header.set_qform(None, code=0)
    header["sform_code"] = 1
    with gzip.open(path, "wb") as handle:
        header.write_to(handle)
        handle.write(b"\0" * (int(header["vox_offset"]) - header.sizeof_hdr - 4))
        handle.write(data.tobytes(order="F"))


def _cmb_mask(files, values=(1, 2)):
    mask = np.zeros(SHAPE, np.int16)
    mask[3, 5, 4], mask[6, 5, 4] = values
    return mask


def _phase_scaled(files, function):
    phase = np.asanyarray(nib.load(str(files["01"]["phase"])).dataobj)
    _nifti(files["01"]["phase"], function(phase).astype(np.float32))


def _rename(files, label):
    for path in (files["02"]["magnitude"], files["02"]["phase"]):
        target = path.parent.parent.parent / f"sub-{label}" / "anat" / path.name.replace("sub-02", f"sub-{label}")
        target.parent.mkdir(parents=True, exist_ok=True)
        path.rename(target)


def _markers(files, text):
    files["01"]["markers"].write_text(text)


def _world(ijk):
    return AFFINE[:3, :3] @ np.asarray(ijk, float) + AFFINE[:3, 3]


def _lps_markers(files):
    rows = ["x\ty\tz"] + ["\t".join(f"{v:g}" for v in _world(ijk) * [-1, -1, 1]) for ijk in ((3, 5, 4), (6, 5, 4))]
    _markers(files, "\n".join(rows) + "\n")


def _slicer_markers(files):
    """The two CMBs of the mask as a rater's Slicer point list (LPS, Slicer's frame), instead of the table."""
    lps = [list(_world(ijk) * [-1, -1, 1]) for ijk in ((3, 5, 4), (6, 5, 4))]
    points = [{"id": str(n), "label": f"F-{n}", "position": p, "positionStatus": "defined"} for n, p in enumerate(lps)]
    files["01"]["markers"].with_suffix(".mrk.json").write_text(json.dumps({"markups": [
        {"type": "Fiducial", "coordinateSystem": "LPS", "coordinateUnits": "mm", "controlPoints": points}]}))
    files["01"]["markers"].unlink()


def _raw_phase(files):
    grid = np.indices(SHAPE).astype(np.float32)
    background = 0.9 * grid[0] + 0.6 * grid[1] + 1.3  # a steep background field: wraps across the head
    _nifti(files["01"]["phase"], np.angle(np.exp(1j * background)).astype(np.float32))


def _swap(files):
    """Magnitude and phase files swapped, the phase stored as unsigned 12-bit codes (its air random
    across the range, as a scanner's) and the magnitude with air around a head, as every scan has."""
    rng = np.random.default_rng(5)
    head = np.zeros(SHAPE, bool)
    head[3:-3, 3:-3, 2:-2] = True
    magnitude = np.where(head, rng.uniform(100, 200, SHAPE), rng.rayleigh(4, SHAPE))
    phase = np.where(head, rng.normal(0, 0.4, SHAPE), rng.uniform(-np.pi, np.pi, SHAPE))
    _nifti(files["01"]["magnitude"], np.rint((phase + np.pi) / (2 * np.pi) * 4095).astype(np.uint16))
    _nifti(files["01"]["phase"], magnitude.astype(np.float32))


def _nan_outside_head(files, subject="02", hole=False):
    """The background outside a box-shaped head written as NaN (as SPM and some exports do);
    ``hole``: one NaN voxel inside the head as well, in the magnitude."""
    head = np.zeros(SHAPE, bool)
    head[2:-2, 2:-2, 1:-1] = True
    for part in ("magnitude", "phase"):
        data = np.asanyarray(nib.load(str(files[subject][part])).dataobj)
        data = np.where(head, data, np.nan).astype(np.float32)
        if hole and part == "magnitude":
            data[6, 7, 5] = np.nan
        _nifti(files[subject][part], data)


# (id, mutation of the two-subject dataset, extra options, None = accepted / fragments the message must hold)
REFUSED = [
    ("phase missing", lambda f: f["01"]["phase"].unlink(), [], ["sub-01_part-mag_swi.nii.gz", "no phase image", "patterns.phase"]),
    ("phase empty", lambda f: f["01"]["phase"].write_bytes(b""), [], ["sub-01_part-phase_swi.nii.gz", "file is empty", "Re-export"]),
    ("magnitude corrupt", lambda f: gzip.open(f["01"]["magnitude"], "wb").close(), [], ["sub-01_part-mag_swi.nii.gz", "cannot be read"]),
    ("magnitude truncated", lambda f: f["01"]["magnitude"].write_bytes(f["01"]["magnitude"].read_bytes()[:200]), [],
     ["sub-01_part-mag_swi.nii.gz", "cannot be read"]),
    ("first file corrupt", lambda f: f["01"]["magnitude"].write_bytes(b"\x00" * 400), [], ["sub-01_part-mag_swi.nii.gz", "cannot be read"]),
    ("magnitude NaN", lambda f: _nifti(f["02"]["magnitude"], np.full(SHAPE, np.nan, np.float32)), [],
     ["sub-02_part-mag_swi.nii.gz", "NaN or Inf", "Replace them"]),
    ("phase Inf", lambda f: _nifti(f["01"]["phase"], np.full(SHAPE, np.inf, np.float32)), [], ["sub-01_part-phase_swi.nii.gz", "NaN or Inf"]),
    ("magnitude 4-D", lambda f: _nifti(f["02"]["magnitude"], np.ones((*SHAPE, 3), np.float32)), [],
     ["sub-02_part-mag_swi.nii.gz", "expected a 3-D volume", "Split 4-D"]),
    ("phase other shape", lambda f: _nifti(f["01"]["phase"], np.zeros((12, 14, 9), np.float32)), [],
     ["sub-01_part-phase_swi.nii.gz", "shape (12, 14, 9)", "resample"]),
    ("phase other affine", lambda f: _nifti(f["01"]["phase"], np.zeros(SHAPE, np.float32), AFFINE @ np.diag([1, 1, 1.5, 1])), [],
     ["sub-01_part-phase_swi.nii.gz", "affine differs", "affine_tolerance_mm"]),
    ("mask other shape", lambda f: _nifti(f["01"]["mask"], np.zeros((6, 7, 5), np.int16)), [], ["sub-01_desc-cmb_mask.nii.gz", "CMB mask has shape"]),
    ("mask fractional", lambda f: _nifti(f["01"]["mask"], np.full(SHAPE, 0.5, np.float32)), [], ["sub-01_desc-cmb_mask.nii.gz", "non-negative integers"]),
    ("mask negative", lambda f: _nifti(f["01"]["mask"], -_cmb_mask(f)), [], ["sub-01_desc-cmb_mask.nii.gz", "non-negative integers"]),
    ("magnitude complex", lambda f: _nifti(f["02"]["magnitude"], np.ones(SHAPE, np.complex64)), [],
     ["sub-02_part-mag_swi.nii.gz", "complex values", "two real images"]),
    ("magnitude all zero", lambda f: _nifti(f["02"]["magnitude"], np.zeros(SHAPE, np.float32)), [], ["sub-02_part-mag_swi.nii.gz", "all zero"]),
    ("magnitude negative", lambda f: _nifti(f["02"]["magnitude"], np.random.default_rng(0).normal(0, 100, SHAPE).astype(np.float32)), [],
     ["sub-02_part-mag_swi.nii.gz", "negative", "abs of the complex image"]),
    ("single slice", lambda f: [_nifti(f["02"][k], np.ones((*SHAPE[:2], 1), np.float32)) for k in ("magnitude", "phase")], [],
     ["sub-02_part-mag_swi.nii.gz", "a 3-D detector needs a volume", "not single slices"]),
    ("two slices", lambda f: [_nifti(f["02"][k], np.ones((*SHAPE[:2], 2), np.float32)) for k in ("magnitude", "phase")], [],
     ["sub-02_part-mag_swi.nii.gz", "a 3-D detector needs a volume"]),
    ("no orientation", lambda f: _nifti(f["02"]["magnitude"], np.ones(SHAPE, np.float32), codes=0), [],
     ["sub-02_part-mag_swi.nii.gz", "no orientation", "dcm2niix"]),
    ("singular affine", lambda f: _singular(f["02"]["magnitude"]), [],
     ["sub-02_part-mag_swi.nii.gz", "singular", "pixdim"]),
    ("markers without xyz", lambda f: _markers(f, "i\tj\tk\n1\t2\t3\n"), [],
     ["sub-01_desc-cmb_markers.tsv", "lacks column(s)", "voxel indices: convert them to world mm"]),
    ("markers saved as csv", lambda f: f["01"]["markers"].rename(f["01"]["markers"].with_suffix(".csv")), [],
     ["sub-01_desc-cmb_markers.csv", "in a form cmbflow does not read", "save it tab-separated as .tsv"]),
    ("markers not numbers", lambda f: _markers(f, "x\ty\tz\na\tb\tc\n"), [], ["sub-01_desc-cmb_markers.tsv", "finite numbers"]),
    ("markers 0 bytes", lambda f: _markers(f, ""), [], ["sub-01_desc-cmb_markers.tsv", "markers file is empty", "header line"]),
    ("marker outside image", lambda f: _markers(f, "x\ty\tz\n500\t0\t0\n"), [], ["sub-01_desc-cmb_markers.tsv", "lies outside", "RAS+"]),
    ("marker negative radius", lambda f: _markers(f, "x\ty\tz\tradius_mm\n3\t-2\t-1\t-1.5\n"), [],
     ["sub-01_desc-cmb_markers.tsv", "radius_mm must be positive", "line(s) 2"]),
    ("marker unknown region", lambda f: _markers(f, "x\ty\tz\tregion\n3\t-2\t-1\tcortex\n"), [],
     ["sub-01_desc-cmb_markers.tsv", "['cortex'] is not a MARS region", "lobar, deep, infratentorial"]),
    ("markers in LPS", _lps_markers, [], ["sub-01_desc-cmb_markers.tsv", "LPS", "negate x and y"]),
    ("markers miss their mask", lambda f: _markers(f, "x\ty\tz\n" + "\t".join(f"{v:g}" for v in _world((9, 12, 8))) + "\n"), [],
     ["sub-01_desc-cmb_markers.tsv", "from every voxel of the subject's CMB mask"]),
    ("phase is a B0 field map", lambda f: f["01"]["phase"].with_name("sub-01_part-phase_swi.json").write_text(
        '{"ImageType": ["ORIGINAL", "PRIMARY", "OTHER", "REAL", "FIELDMAPHZ"], "Units": "Hz"}'), [],
     ["sub-01_part-phase_swi.nii.gz", "B0 field map (Units 'Hz')", "phase: false"]),
    ("spatial units micron", lambda f: _units(f["02"]["magnitude"], "micron"), [],
     ["sub-02_part-mag_swi.nii.gz", "spatial units are microns", "set_xyzt_units('mm')"]),
    ("upper-case extension", lambda f: [p.rename(p.with_name(p.name.replace(".nii.gz", ".NII.GZ")))
                                        for p in (f["02"]["magnitude"], f["02"]["phase"])], [],
     ["sub-02_desc-cmb_mask.nii.gz", "without a magnitude image", "sub-02/ holds: anat/sub-02_part-mag_swi.NII.GZ"]),
    ("label with underscore", lambda f: _rename(f, "02_b"), [], ["sub-02_b_part-mag_swi.nii.gz", "not with BIDS labels", "Rename them"]),
    ("label with space", lambda f: _rename(f, "02 b"), [], ["sub-02 b_part-mag_swi.nii.gz", "not with BIDS labels"]),
    ("label with accent", lambda f: _rename(f, "02é"), [], ["sub-02é_part-mag_swi.nii.gz", "not with BIDS labels"]),
    ("phase without magnitude", lambda f: f["02"]["magnitude"].unlink(), [],
     ["sub-02_part-phase_swi.nii.gz", "without a magnitude image", "sub-02_part-mag_swi.nii.gz"]),
    ("two magnitudes of one subject", lambda f: f["01"]["magnitude"].with_name("sub-01_acq-b_part-mag_swi.nii.gz").write_bytes(
        f["01"]["magnitude"].read_bytes()), ["--pattern", "magnitude=sub-{subject}/anat/sub-{subject}*_part-mag_swi.nii.gz"],
     ["duplicate subject ids", "sub-01"]),
    ("radians forced on codes", lambda f: _phase_scaled(f, lambda p: np.rint((p + np.pi) / (2 * np.pi) * 4095)),
     ["--phase-units", "radians"], ["sub-01_part-phase_swi.nii.gz", "phase_units is radians, but the values span"]),
    ("code range too small", lambda f: _phase_scaled(f, lambda p: np.rint(p / np.pi * 4096)), ["--phase-code-range", "0", "4095"],
     ["sub-01_part-phase_swi.nii.gz", "phase_code_range [0, 4095] does not hold"]),
    ("unwrapped phase", lambda f: _phase_scaled(f, lambda p: p * 7.3), [], ["sub-01_part-phase_swi.nii.gz", "phase_units: unwrapped"]),
    ("scanner forced on floats", lambda f: None, ["--phase-units", "scanner"], ["sub-01_part-phase_swi.nii.gz", "not integer codes"]),
    ("internal without annotations", lambda f: [f["02"][k].unlink() for k in ("mask", "markers") if k in f["02"]], ["--role", "internal"],
     ["sub-02_part-mag_swi.nii.gz", "no CMB annotation", "role to external"]),
    ("mask without its subject", lambda f: f["02"]["magnitude"].unlink() or f["02"]["phase"].unlink(), [],
     ["sub-02_desc-cmb_mask.nii.gz", "mask file(s) without a magnitude image"]),
    ("phase NaN", lambda f: _nifti(f["02"]["phase"], np.full(SHAPE, np.nan, np.float32)), [], ["sub-02_part-phase_swi.nii.gz", "NaN or Inf"]),
    ("magnitude NaN inside the head", lambda f: _nan_outside_head(f, hole=True), [],
     ["sub-02_part-mag_swi.nii.gz", "1 voxel(s) are NaN or Inf, enclosed by the image", "Replace them"]),
    ("magnitude one value", lambda f: _nifti(f["02"]["magnitude"], np.full(SHAPE, 100, np.float32)), [],
     ["sub-02_part-mag_swi.nii.gz", "one value only", "Re-export the magnitude"]),
    ("phase one value", lambda f: _nifti(f["02"]["phase"], np.zeros(SHAPE, np.float32)), [],
     ["sub-02_part-phase_swi.nii.gz", "one value only", "patterns.phase", "phase: false"]),
    ("phase is the magnitude file", lambda f: f["01"]["phase"].write_bytes(f["01"]["magnitude"].read_bytes()), [],
     ["sub-01_part-phase_swi.nii.gz", "follows the magnitude sub-01_part-mag_swi.nii.gz", "rank correlation 1.00", "patterns.phase"]),
    ("phase is a magnitude in 12-bit codes", lambda f: _nifti(f["01"]["phase"], np.rint(
        np.asanyarray(nib.load(str(f["01"]["magnitude"])).dataobj) * 20).astype(np.int16)), [],
     ["sub-01_part-phase_swi.nii.gz", "follows the magnitude", "mIP"]),
    ("magnitude and phase swapped", lambda f: _swap(f), [],
     ["sub-01_part-mag_swi.nii.gz", "magnitude and phase are swapped", "sub-01_part-phase_swi.nii.gz", "patterns.magnitude"]),
    ("phase is noise", lambda f: _nifti(f["01"]["phase"], np.random.default_rng(3).uniform(-np.pi, np.pi, SHAPE).astype(np.float32)), [],
     ["sub-01_part-phase_swi.nii.gz", "no spatially smooth signal", "patterns.phase"]),
]

ACCEPTED = [
    ("nii among nii.gz", lambda f: [_uncompress(p) for p in (f["02"]["magnitude"], f["02"]["phase"])],
     [], lambda m: list(m["key"]) == ["01", "02"] and m["magnitude"][1].endswith(".nii")),
    ("mask 0/255", lambda f: _nifti(f["01"]["mask"], _cmb_mask(f, (255, 255)).astype(np.uint8)), [], lambda m: list(m["n_cmb"]) == ["2", "0"]),
    ("mask 0/1 float", lambda f: _nifti(f["01"]["mask"], _cmb_mask(f, (1, 1)).astype(np.float32)), [], lambda m: list(m["n_cmb"]) == ["2", "0"]),
    ("phase in degrees", lambda f: _phase_scaled(f, np.rad2deg), [], lambda m: m["phase_units"][0].startswith("phase in degrees")),
    ("phase in 12-bit codes", lambda f: _phase_scaled(f, lambda p: np.rint((p + np.pi) / (2 * np.pi) * 4095)), [],
     lambda m: "scanner units 0..4095" in m["phase_units"][0]),
    ("trailing singleton axis", lambda f: _nifti(f["02"]["magnitude"], np.asanyarray(nib.load(str(f["02"]["magnitude"])).dataobj)[..., None]),
     [], lambda m: len(m) == 2),
    ("raw phase filtered in preprocessing", lambda f: _raw_phase(f), [],
     lambda m: (m["phase_kind"][0], m["phase_filter"][0], m["phase_kind"][1], m["phase_filter"][1]) == ("raw", "homodyne", "filtered", "none")),
    ("upper-case marker columns", lambda f: _markers(f, "X\tY\tZ\n" + "".join(
        "\t".join(f"{v:g}" for v in _world(ijk)) + "\n" for ijk in ((3, 5, 4), (6, 5, 4)))), [],
     lambda m: list(m["n_cmb"]) == ["2", "0"]),
    ("spatial units unknown", lambda f: _units(f["02"]["magnitude"], "unknown"), [], lambda m: len(m) == 2),
    ("markers comma separated (a spreadsheet's CSV)", lambda f: _markers(f, "x,y,z\n" + "".join(
        ",".join(f"{v:g}" for v in _world(ijk)) + "\n" for ijk in ((3, 5, 4), (6, 5, 4)))), [],
     lambda m: list(m["n_cmb"]) == ["2", "0"]),
    ("header-only markers", lambda f: _markers(f, "x\ty\tz\n"), [], lambda m: list(m["n_cmb"]) == ["2", "0"]),
    ("unwrapped phase named", lambda f: _phase_scaled(f, lambda p: 0.3 * p + 1.1 * np.indices(SHAPE)[0]), ["--phase-units", "unwrapped"],
     lambda m: "unwrapped" in m["phase_units"][0]),
    ("plain NIfTI named .nii.gz", lambda f: f["02"]["magnitude"].write_bytes(gzip.decompress(f["02"]["magnitude"].read_bytes())),
     [], lambda m: m["magnitude"][1].endswith("sub-02_part-mag_swi.nii.gz") and m["shape"][1] == "12x14x10"),
    ("markers from Slicer (.mrk.json, LPS)", lambda f: _slicer_markers(f), [],
     lambda m: m["markers"][0].endswith("sub-01_desc-cmb_markers.mrk.json") and list(m["n_cmb"]) == ["2", "0"]),
    ("NaN outside the head", lambda f: _nan_outside_head(f), [], lambda m: list(m["key"]) == ["01", "02"]),
    ("markers with region names", lambda f: _markers(f, "x\ty\tz\tregion\n" + "\t".join(f"{v:g}" for v in _world((3, 5, 4))) + "\tLobar\n"),
     [], lambda m: list(m["n_cmb"]) == ["2", "0"]),
]


def _run(tmp_path, mutate, options):
    root = tmp_path / "bids"
    files = {"01": write_subject(root, "01", n_cmb=2), "02": write_subject(root, "02", n_cmb=0)}
    mutate(files)
    before = _snapshot(root)
    (root / "sub-01").chmod(0o555)  # read-only inputs, as on a hospital share
    code = main(["validate", str(root), "--name", "site", *options])
    (root / "sub-01").chmod(0o755)
    assert _snapshot(root) == before, "an input file changed"
    return root, code


@pytest.mark.parametrize("mutate, options, fragments", [case[1:] for case in REFUSED], ids=[case[0] for case in REFUSED])
def test_a_bad_input_is_refused_naming_the_file_and_the_fix(tmp_path, capsys, mutate, options, fragments):
    root, code = _run(tmp_path, mutate, options)
    message = capsys.readouterr().err
    assert code == 1 and " ERROR " in message, "accepted a bad input"
    assert "Traceback" not in message
    for fragment in fragments:
        assert fragment in message, message


@pytest.mark.parametrize("mutate, options, check", [case[1:] for case in ACCEPTED], ids=[case[0] for case in ACCEPTED])
def test_an_unusual_legal_input_is_processed(tmp_path, capsys, mutate, options, check):
    root, code = _run(tmp_path, mutate, options)
    output = capsys.readouterr()
    assert code == 0, output.err
    manifest = pd.read_csv(io.StringIO(output.out), sep="\t", dtype=str, keep_default_na=False)
    assert check(manifest), manifest.to_dict("list")
