"""Write requirements.lock: the exact versions of cmbflow's dependency closure (with the test
and slurm extras) as installed in this environment, for `tools/install.sh` to install with.

torch is left out: install.sh installs torch==2.13.0 itself (the CPU wheel where there is no
GPU, the CUDA build where the user installs one), and its build tag differs by machine.

    python tools/lock.py        # after changing dependencies in pyproject.toml
"""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LEFT_OUT = {"torch", "cmbflow"}  # and what only torch needs
EXTRAS = {"test", "slurm"}


def _name(requirement: str) -> str:
    return re.split(r"[\s;<>=!~\[(]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def closure() -> dict[str, str]:
    """Installed name -> version of everything cmbflow[test,slurm] pulls in, torch's own tree excluded."""
    torch_tree = _tree("torch", set())
    found: dict[str, str] = {}
    queue = [req for req in distribution("cmbflow").requires or []
             if "extra ==" not in req or any(f'extra == "{extra}"' in req for extra in EXTRAS)]
    while queue:
        requirement = queue.pop()
        if "extra ==" in requirement and not any(f'extra == "{extra}"' in requirement for extra in EXTRAS | {"cmbflow"}):
            continue
        name = _name(requirement)
        if name in found or name in LEFT_OUT or (name in torch_tree and name not in _direct()):
            continue
        try:
            dist = distribution(name)
        except PackageNotFoundError:  # an environment marker that does not apply here
            continue
        found[name] = dist.version
        queue += [req for req in dist.requires or [] if "extra ==" not in req]
    return dict(sorted(found.items()))


def _direct() -> set[str]:
    return {_name(req) for req in distribution("cmbflow").requires or []}


def _tree(name: str, seen: set[str]) -> set[str]:
    try:
        requires = distribution(name).requires or []
    except PackageNotFoundError:
        return seen
    for requirement in requires:
        child = _name(requirement)
        if "extra ==" not in requirement and child not in seen:
            seen.add(child)
            _tree(child, seen)
    return seen


def main() -> None:
    pins = closure()
    lines = ["# Exact versions cmbflow is tested with (tools/lock.py writes this; tools/install.sh installs with it).",
             "# torch is not here: install.sh installs torch==2.13.0 first.",
             *(f"{name}=={version}" for name, version in pins.items())]
    (REPO / "requirements.lock").write_text("\n".join(lines) + "\n")
    print(f"requirements.lock: {len(pins)} packages")


if __name__ == "__main__":
    main()
