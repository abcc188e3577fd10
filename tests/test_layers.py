"""The package's stages import only the stages below them (and their own modules)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "cmbflow"
# foundations <- synth / preprocessing / models <- training / inference <- localization <- evaluation <- figures <- cli
LAYERS = [
    {"__init__", "io", "atlas", "paths", "config", "settings", "logs", "device", "phase_filter", "dark_spots", "sites"},
    {"synth", "preprocessing", "models"},
    {"training", "inference"},
    {"localization"},
    {"evaluation"},
    {"figures"},
    {"cli"},
]
LAYER = {stage: n for n, stages in enumerate(LAYERS) for stage in stages}


def imported_stages(path: Path) -> list[tuple[int, str]]:
    """``(line, stage)`` of every cmbflow import in a module, at any depth (function-level too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "cmbflow":
            parts = node.module.split(".")
            found += [(node.lineno, parts[1])] if len(parts) > 1 else [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name.split(".")[1]) for a in node.names if a.name.startswith("cmbflow.")]
    return found


def test_every_module_belongs_to_a_layer():
    stages = {path.relative_to(PACKAGE).with_suffix("").parts[0] for path in PACKAGE.rglob("*.py")}
    assert stages <= set(LAYER), sorted(stages - set(LAYER))


def test_no_import_runs_back_up_or_across_a_layer():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        stage = path.relative_to(PACKAGE).with_suffix("").parts[0]
        for line, imported in imported_stages(path):
            # foundations may use each other; a stage above them only the layers below its own
            if imported != stage and (LAYER[imported] > LAYER[stage] or LAYER[imported] == LAYER[stage] > 0):
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {stage} imports {imported}")
    assert not upward, "\n".join(upward)
