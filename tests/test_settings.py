"""The schema is the only source of defaults; settings are built from config sections that are checked key by key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from cmbflow.evaluation.detection import HitRule
from cmbflow.inference.detect import InferenceSettings
from cmbflow.localization.network import LocalizerSettings
from cmbflow.preprocessing.registration import RegistrationSettings
from cmbflow.preprocessing.subject import PreprocSettings
from cmbflow.settings import config_schema, dataset_entry, resolve_ref, schema_defaults
from cmbflow.synth.randomize import Randomization
from cmbflow.training.loop import TrainSettings

SETTINGS = [TrainSettings, InferenceSettings, LocalizerSettings, RegistrationSettings, PreprocSettings, HitRule, Randomization]
CONFIG_YAML = Path(__file__).resolve().parents[1] / "config.yaml"
DATA_KEYS = ("datasets", "synth.sites")  # the built-in cohort: data, not defaults


@pytest.mark.parametrize("cls", SETTINGS, ids=lambda cls: cls.__name__)
def test_settings_have_no_defaults_of_their_own_and_the_schema_has_every_one(cls):
    own = [f.name for f in dataclasses.fields(cls)
           if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING]
    assert not own, f"{cls.__name__} defaults {own}: the schema holds them"
    settings = cls.defaults((1.0, 1.0, 2.0)) if cls is PreprocSettings else cls.defaults()
    assert dataclasses.is_dataclass(settings)


def test_config_yaml_writes_the_schemas_defaults_and_no_other_value():
    """config.yaml lists every key for the reader; a value there that is not the schema's
    default would be a second source of truth."""
    differences = []

    def walk(value, node, key):
        default = node.get("default")
        node = resolve_ref(node)
        default = node.get("default") if default is None else default
        if key in DATA_KEYS:
            return
        if isinstance(value, dict) and "properties" in node:
            for name, item in value.items():
                walk(item, node["properties"][name], f"{key}.{name}" if key else name)
        elif default != value:
            differences.append(f"{key}: config.yaml {value!r}, schema {default!r}")

    walk(yaml.safe_load(CONFIG_YAML.read_text()), config_schema(), "")
    assert not differences, "\n".join(differences)


def test_an_unknown_or_missing_setting_is_refused_naming_it_and_its_section():
    options = {**schema_defaults("detector.inference"), "nms": 0.2}
    with pytest.raises(ValueError, match=r"^detector.inference: unknown setting\(s\) nms;"):
        InferenceSettings.from_config(options)
    with pytest.raises(ValueError, match=r"^localizer: missing setting\(s\) seed"):
        LocalizerSettings.from_config({k: v for k, v in schema_defaults("localizer").items() if k != "seed"})
    assert InferenceSettings.from_config(schema_defaults("detector.inference")).nms_iou == 0.1  # threads, maps: the rule's


def test_a_dataset_entry_built_by_hand_gets_the_schemas_defaults():
    entry = dataset_entry({"bids_dir": "x", "role": "external", "phase_sign": -1})
    assert entry["phase_sign"] == -1 and entry["phase_units"] == "auto" and entry["phase_filter_mm"] == 10
    assert "role" not in schema_defaults("datasets.*")  # required keys have no default


def test_a_model_card_from_before_a_setting_existed_still_loads_and_a_foreign_key_names_the_card():
    record = {k: v for k, v in schema_defaults("localizer").items() if k not in ("weight_decay", "checkpoint_every", "threads")}
    settings = LocalizerSettings.from_record(record, "old/model_card.json")
    assert settings.weight_decay == schema_defaults("localizer")["weight_decay"] and settings.channels == (8, 16, 32, 64)
    with pytest.raises(ValueError, match=r"^old/model_card.json: localizer: unknown setting\(s\) dropout"):
        LocalizerSettings.from_record({**record, "dropout": 0.1}, "old/model_card.json")
    detector = TrainSettings.from_record({"iterations": 5}, "card.json")  # a detector's flat record, as the card keeps it
    assert detector.iterations == 5 and detector.inputs == ("swi", "phase")
