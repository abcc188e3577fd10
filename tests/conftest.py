"""Shared fixtures: a tiny BIDS dataset of small real NIfTI files, built per test."""

from __future__ import annotations

import logging
import os
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from cmbflow.io.nifti import save_volume

if os.environ.get("PYTEST_XDIST_WORKER"):  # workers side by side (-n 2): a thread each, not the machine each
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _restored_logging():
    """Code under test that sets up logging in-process (the CLI) points the root handler at the
    test's captured stderr, closed after the test: put the handlers (and excepthook) back."""
    root = logging.getLogger()
    handlers, level, hook = root.handlers[:], root.level, sys.excepthook
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    sys.excepthook = hook


@pytest.fixture(scope="session")
def mars_atlas_file(tmp_path_factory) -> Path:
    """The default MARS atlas on the ICBM grid (what rule build_region_atlas writes), built once
    per test session and shared: building it takes seconds."""
    from cmbflow.atlas import build_region_atlas, load_template

    template = load_template()
    path = tmp_path_factory.mktemp("atlas") / "tpl-ICBM2009c_desc-mars_dseg.nii.gz"
    save_volume(path, build_region_atlas(template), template.affine, dtype=np.uint8)
    return path


@pytest.fixture(scope="session")
def simulator(mars_atlas_file):
    """The generator over that atlas, shared by every test that simulates (stateless between subjects)."""
    from cmbflow.synth.cohort import make_simulator

    return make_simulator(mars_atlas_file)


SHAPE = (12, 14, 10)
AFFINE = np.array([[-1.0, 0, 0, 6], [0, 1.0, 0, -7], [0, 0, 2.0, -9], [0, 0, 0, 1]])  # LAS storage


def write_subject(root: Path, subject: str, session: str | None = None, n_cmb: int = 1, markers: bool = True, mask: bool = True):
    """Write magnitude, phase (radians) and annotations of one subject; returns their paths."""
    rng = np.random.default_rng(zlib.crc32(f"{subject}/{session}".encode()))  # hash() changes per process
    prefix = f"sub-{subject}" + (f"_ses-{session}" if session else "")
    anat = root / f"sub-{subject}" / (f"ses-{session}/" if session else "") / "anat"
    labels = root / "derivatives" / "cmb_labels" / f"sub-{subject}" / (f"ses-{session}/" if session else "") / "anat"
    paths = {
        "magnitude": anat / f"{prefix}_part-mag_swi.nii.gz",
        "phase": anat / f"{prefix}_part-phase_swi.nii.gz",
        "mask": labels / f"{prefix}_desc-cmb_mask.nii.gz",
        "markers": labels / f"{prefix}_desc-cmb_markers.tsv",
    }
    save_volume(paths["magnitude"], rng.uniform(100, 200, SHAPE).astype(np.float32), AFFINE)
    save_volume(paths["phase"], rng.normal(0, 0.4, SHAPE).astype(np.float32), AFFINE)  # high-pass filtered: near 0
    instance = np.zeros(SHAPE, np.int16)
    rows = ["x\ty\tz\tradius_mm"]
    for n in range(n_cmb):
        ijk = np.array([3 + 3 * n, 5, 4])
        instance[tuple(ijk)] = n + 1
        x, y, z = AFFINE[:3, :3] @ ijk + AFFINE[:3, 3]
        rows.append(f"{x}\t{y}\t{z}\t1.5")
    if mask:
        save_volume(paths["mask"], instance, AFFINE)
    else:
        del paths["mask"]
    if markers:
        paths["markers"].parent.mkdir(parents=True, exist_ok=True)
        paths["markers"].write_text("\n".join(rows) + "\n")
    else:
        del paths["markers"]
    return paths


@pytest.fixture
def bids(tmp_path):
    """A valid two-subject dataset: sub-01 with 2 CMBs, sub-02 with none."""
    root = tmp_path / "bids"
    files = {"01": write_subject(root, "01", n_cmb=2), "02": write_subject(root, "02", n_cmb=0)}
    return root, files
