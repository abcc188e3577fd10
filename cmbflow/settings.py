"""Config sections into settings: the schema (``schemas/config.schema.yaml``) is the only place a
default is written; every settings dataclass is built from a validated section by
:func:`settings_from_config`, which refuses keys it does not know."""

from __future__ import annotations

import copy
import functools
from dataclasses import fields
from pathlib import Path
from typing import ClassVar

import yaml

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml"


@functools.cache
def config_schema() -> dict:
    return yaml.safe_load(SCHEMA_FILE.read_text())


def resolve_ref(node: dict) -> dict:
    """A schema node with its ``$ref`` (``#/definitions/name``) followed."""
    while "$ref" in node:
        node = config_schema()["definitions"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def _filled(node: dict):
    """The default of a schema node, with the defaults of its properties filled in."""
    value = copy.deepcopy(node["default"]) if "default" in node else None  # a default beside a $ref wins
    node = resolve_ref(node)
    if value is None:
        value = copy.deepcopy(node.get("default"))
    if node.get("type") == "object" and "properties" in node and (value is None or isinstance(value, dict)):
        value = value or {}
        for name, child in node["properties"].items():
            if name not in value:
                default = _filled(child)
                if default is not None:
                    value[name] = default
    return value


def schema_defaults(section: str) -> dict:
    """The defaults of a dotted config ``section`` (e.g. ``detector.inference``; ``*``: an entry
    of a mapping such as ``detector.variants.*``), as Snakemake's validation fills them in: for
    settings built outside the workflow (tests, benchmarks, the command line) without writing a
    default a second time."""
    node = config_schema()
    for name in section.split("."):
        node = resolve_ref(node)["additionalProperties"] if name == "*" else resolve_ref(node)["properties"][name]
    return _filled(node)


def settings_from_config(cls, options: dict, section: str, ignored=()):
    """A settings dataclass from a validated config ``section`` (its dotted name, for errors):
    every field given (the schema holds the defaults: :func:`schema_defaults`), lists as tuples.
    A key that is not a field is refused, naming it and the section, unless it is ``ignored``
    (read by another step, e.g. a job's ``threads``)."""
    names = [f.name for f in fields(cls)]
    unknown = sorted(set(options) - set(names) - set(ignored))
    if unknown:
        raise ValueError(f"{section}: unknown setting(s) {', '.join(unknown)}; the settings are {', '.join(names)}")
    missing = [name for name in names if name not in options]
    if missing:
        raise ValueError(f"{section}: missing setting(s) {', '.join(missing)} (schemas/config.schema.yaml has their defaults)")

    def tuples(value):
        return tuple(tuples(v) for v in value) if isinstance(value, list) else value
    return cls(**{name: tuples(options[name]) for name in names})


class FromConfig:
    """Mixin of a settings dataclass built from one config ``section``: :meth:`from_config`
    takes the validated section, :meth:`defaults` the schema's defaults (tests, benchmarks),
    :meth:`from_record` a model card's record of the settings."""

    section: ClassVar[str]
    ignored: ClassVar[tuple[str, ...]] = ()  # keys of the section that other steps read

    @classmethod
    def default_options(cls) -> dict:
        """The schema's defaults of the section, as :meth:`from_config` takes them."""
        return schema_defaults(cls.section)

    @classmethod
    def from_config(cls, options: dict):
        return settings_from_config(cls, options, cls.section, cls.ignored)

    @classmethod
    def defaults(cls, **overrides):
        """The schema's defaults of the section, with ``overrides``."""
        return cls.from_config({**cls.default_options(), **overrides})

    @classmethod
    def from_record(cls, record: dict, source: str):
        """From a model card's record (``source`` names the card for errors). A card written
        before a setting existed lacks it; the schema's default stands in, as the model was
        trained with the behaviour that default keeps."""
        return settings_from_config(cls, {**cls.default_options(), **record}, f"{source}: {cls.section}", cls.ignored)


def dataset_entry(dataset: dict) -> dict:
    """A ``datasets.<name>`` entry with the schema's defaults filled in: a validated config has
    them already, an entry built by hand (``cmbflow validate``, tests) may not."""
    return {**schema_defaults("datasets.*"), **dataset}
