"""The model card module: read without torch (census and evaluation jobs only need the card)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cmbflow.models.card import operating_threshold


def test_reading_a_card_imports_no_torch():
    code = "import sys, cmbflow.models.card; print(sorted({'torch', 'monai'} & set(sys.modules)))"
    imported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert imported == "[]"  # torch + MONAI cost a job ~3 s to import


def test_operating_threshold_from_its_file_or_config(tmp_path):
    point = tmp_path / "operating_point.json"
    point.write_text(json.dumps({"threshold": 0.42, "source": "validation subjects of training"}))
    assert operating_threshold(point) == 0.42
    assert operating_threshold(point, configured=0.1) == 0.1
    with pytest.raises(ValueError, match="census.score_threshold"):
        operating_threshold(tmp_path / "missing.json")
