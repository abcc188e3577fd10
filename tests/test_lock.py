"""requirements.lock pins what the tests run with: every dependency of pyproject.toml, at the
version installed here (tools/lock.py rewrites it after a dependency change)."""

from importlib.metadata import version
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[1]


def test_every_dependency_is_pinned_at_the_installed_version():
    lock = dict(line.split("==") for line in (REPO / "requirements.lock").read_text().splitlines()
                if line and not line.startswith("#"))
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["test"]]
    names = {requirement.split(">")[0].split("=")[0].split("<")[0].strip().lower() for requirement in wanted} - {"torch"}
    assert names <= set(lock), sorted(names - set(lock))
    assert {name: lock[name] for name in names} == {name: version(name) for name in names}
    assert "torch" not in lock  # install.sh installs torch==2.13.0 itself (its build differs by machine)
