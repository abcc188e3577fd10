"""Configs as the rules receive them: given sections over the schema's defaults (Snakemake's validation)."""

from __future__ import annotations

import copy

from cmbflow.config import validate_config
from cmbflow.settings import SCHEMA_FILE


def validated_config(**sections) -> dict:
    """A whole config: ``sections`` (e.g. ``detector={...}``) with every other key the schema's default."""
    config = {"datasets": {"unused": {"bids_dir": "unused", "role": "internal"}}, "synth": {"sites": {}},
              **copy.deepcopy(sections)}
    validate_config(config, SCHEMA_FILE, ["(test config)"])
    return config


def default_strides() -> tuple[tuple[int, ...], ...]:
    """The detector's per-level strides as the schema sets them (``detector.network.strides``)."""
    return tuple(map(tuple, validated_config()["detector"]["network"]["strides"]))
