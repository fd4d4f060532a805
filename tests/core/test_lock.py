"""requirements.lock (what the image installs with --require-hashes) pins every runtime
dependency of pyproject.toml with its hashes; `make lock` renews it."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_lock_pins_every_dependency_with_hashes() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    lock = (REPO / "requirements.lock").read_text()
    pinned = {
        m.group(1).lower(): m.group(2)
        for m in re.finditer(r"^([A-Za-z0-9_.-]+)==(\S+) \\$", lock, re.M)
    }
    missing = {_name(r) for r in project["dependencies"]} - set(pinned)
    assert not missing, f"not in requirements.lock (run `make lock`): {sorted(missing)}"
    entries = re.split(r"\n(?=[A-Za-z0-9])", lock.split("\n", 2)[-1])
    for entry in entries:
        if "==" in entry:
            assert "--hash=sha256:" in entry, entry.splitlines()[0]
    assert project["name"] == "provenant-server"  # `provenant` on the index is someone else's
