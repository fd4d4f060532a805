"""Admission cost against the number of containers in one object: linear, 10,000 in under 1 s.

Issue 11: 2,000 containers took 1.06 s, 4,000 3.96 s, 8,000 9.5 s, 10,000 17.9 s (each image's
containers were found by scanning them all). Here a real ``provenant serve`` (SQLite in a
temporary directory, the repository's ./policies, recorder child process) answers one
AdmissionReview per size: a Pod of N containers, each with its own digest-pinned image (none
attested: every image is looked up, evaluated and denied, and the decision recorded with an
explanation per image), then N identical containers. PROVENANT_MAX_CONTAINERS_PER_OBJECT is
raised for the run to admit the largest size; at its default (1000) a larger object is denied
before evaluation, which the last line shows.

    .venv/bin/python bench/containers.py [--sizes 1000,2000,4000,8000,10000] [--repeat 3]

Times are wall-clock from this process (best and median of --repeat), on a machine whose 2
cores may be shared: the spread is the noise.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from app.auth.service import create_token  # noqa: E402
from app.db import Database  # noqa: E402
from app.migrate import upgrade  # noqa: E402


def review(images: list[str]) -> dict[str, Any]:
    uid = str(uuid.uuid4())
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "bench",
            "operation": "CREATE",
            "userInfo": {"username": "bench"},
            "object": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": f"p-{uid[:8]}", "namespace": "bench"},
                "spec": {
                    "containers": [
                        {"name": f"c{i}", "image": image} for i, image in enumerate(images)
                    ]
                },
            },
        },
    }


def images(count: int, distinct: bool) -> list[str]:
    salt = uuid.uuid4().hex  # never decided before: no decision cache hit
    return [
        f"ghcr.io/acme/app{n if distinct else 0}@sha256:"
        + hashlib.sha256(f"{salt}{n if distinct else 0}".encode()).hexdigest()
        for n in range(count)
    ]


def start(workdir: Path, limit: int) -> tuple[subprocess.Popen[bytes], str, str]:
    url = f"sqlite:///{workdir / 'provenant.db'}"
    upgrade(url)
    db = Database(url)
    with db.session() as session:
        token = create_token(session, "bench", ["admission"])
    db.dispose()
    port = 19000 + os.getpid() % 1000
    env = {
        **os.environ,
        "PROVENANT_DATABASE_URL": url,
        "PROVENANT_POLICY_DIR": str(REPO / "policies"),
        "PROVENANT_AUDIT_KEY_FILE": str(workdir / "audit-key.pem"),
        "PROVENANT_LOG_LEVEL": "warning",
        "PROVENANT_MAX_CONTAINERS_PER_OBJECT": str(limit),
    }
    log = (workdir / "server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/readyz").status_code == 200:
                return server, base, token
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            raise SystemExit(f"server did not start; see {workdir / 'server.log'}")
        time.sleep(0.2)


def timed(client: httpx.Client, body: dict[str, Any], token: str) -> tuple[float, dict]:
    started = time.perf_counter()
    response = client.post("/k8s/validate", json=body, headers={"Authorization": f"Bearer {token}"})
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.text[:300]
    return elapsed, response.json()["response"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,2000,4000,8000,10000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="provenant-containers-"))
    server, base, token = start(workdir, max(sizes))
    try:
        with httpx.Client(base_url=base, timeout=120) as client:
            timed(client, review(images(10, True)), token)  # warm-up
            print(f"{os.cpu_count()} CPUs (shared); wall-clock per AdmissionReview, s")
            print(
                f"{'containers':>10}  {'distinct: best':>14}  {'median':>7}  "
                f"{'one image: best':>15}  {'median':>7}"
            )
            for size in sizes:
                row = []
                for distinct in (True, False):
                    times = []
                    for _ in range(args.repeat):
                        elapsed, answer = timed(client, review(images(size, distinct)), token)
                        assert answer["allowed"] is False  # nothing here is attested
                        times.append(elapsed)
                    row += [min(times), statistics.median(times)]
                print(
                    f"{size:>10}  {row[0]:>14.3f}  {row[1]:>7.3f}  {row[2]:>15.3f}  {row[3]:>7.3f}",
                    flush=True,
                )
    finally:
        server.terminate()
        server.wait(30)
    # The default limit: a larger object is refused before evaluation.
    workdir = Path(tempfile.mkdtemp(prefix="provenant-containers-"))
    server, base, token = start(workdir, 1000)
    try:
        with httpx.Client(base_url=base, timeout=120) as client:
            elapsed, answer = timed(client, review(images(max(sizes), True)), token)
        print(
            f"at the default limit (1000), {max(sizes)} containers: denied in {elapsed:.3f} s: "
            f"{answer['status']['message'].splitlines()[-1]}"
        )
    finally:
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    main()
