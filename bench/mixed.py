"""Admission latency with and without 8 concurrent maximum-size uploads, in the same run.

Issue 11: while 12 clients uploaded 9.6 MB documents, admission went from p50 24 ms to 3.9 s,
because uploads were parsed and verified on (or beside, holding the interpreter lock) the event
loop that answers the webhook. The target: admission p99 with the uploads at most twice its p99
without them.

1. A fresh database (SQLite in a temporary directory, or PostgreSQL: a database of its own),
   a policy directory trusting one Ed25519 key, and a real ``provenant serve`` with its
   defaults (recorder child process, PROVENANT_INGEST_WORKERS ingest worker processes).
2. 50 images attested through the API (small key-signed DSSE envelopes).
3. Phases of --seconds each, alternating quiet / loaded, --runs times: in both, --clients
   threads send AdmissionReviews back to back (with a 5 ms pause): 4 in 5 a Pod of 3 attested
   images (warm: decided from the decision cache), 1 in 5 a Pod with a never-seen digest (cold:
   a database lookup and a full evaluation). In loaded phases, 8 more threads upload distinct,
   validly signed 10 MiB DSSE envelopes (a statement of ~960,000 small objects: the slowest
   JSON to parse per byte) back to back; they are signed before the phases start.
4. Prints p50 / p99 / max per phase and the ratio of loaded to quiet p99 per run (min /
   median / max over the runs), and the uploads' statuses and latencies.

The load comes from this process, which competes with the server for the CPU (2 cores shared
with other work on the reference machine): the figures say so, and the spread over runs is the
noise.

    .venv/bin/python bench/mixed.py [--runs 3] [--seconds 8] [--clients 4]
        [--uploaders 8] [--backend sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ed25519  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from app.auth.service import create_token  # noqa: E402
from app.db import Database  # noqa: E402
from app.migrate import upgrade  # noqa: E402

PG_ADMIN_URL = os.environ.get(
    "PROVENANT_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MAX_UPLOAD = 10 * 1024 * 1024
PAYLOAD_TYPE = "application/vnd.in-toto+json"
IMAGES = 50
POLICIES = """\
apiVersion: provenant.dev/v1alpha1
kind: ImagePolicy
metadata: {name: bench}
spec:
  images: ["ghcr.io/bench/**"]
  authorities:
    - name: bench-key
      key: {file: keys/bench.pub}
  require:
    - name: provenance
      predicateType: https://slsa.dev/provenance/v1
---
apiVersion: provenant.dev/v1alpha1
kind: PolicyConfig
metadata: {name: bench}
spec:
  noMatch: deny
  tagOnly: deny
"""


def digest_of(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def statement(name: str, digest: str, items: int = 0) -> dict[str, Any]:
    internal: dict[str, Any] = {"nonce": uuid.uuid4().hex}
    if items:
        internal["items"] = [{"k": n % 10} for n in range(items)]
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": name, "digest": {"sha256": digest}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": "https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1",
                "externalParameters": {"workflow": {"ref": "refs/tags/v1.0.0"}},
                "internalParameters": internal,
            },
            "runDetails": {"builder": {"id": "https://github.com/actions/runner"}},
        },
    }


def sign(key: ed25519.Ed25519PrivateKey, document: dict[str, Any]) -> bytes:
    body = json.dumps(document, separators=(",", ":")).encode()
    pae = b"DSSEv1 %d %s %d %s" % (len(PAYLOAD_TYPE), PAYLOAD_TYPE.encode(), len(body), body)
    envelope = {
        "payload": base64.b64encode(body).decode(),
        "payloadType": PAYLOAD_TYPE,
        "signatures": [{"keyid": "", "sig": base64.b64encode(key.sign(pae)).decode()}],
    }
    return json.dumps(envelope).encode()


def maximum_size_upload(key: ed25519.Ed25519PrivateKey, n: int, valid: bool = True) -> bytes:
    """A signed envelope just under the upload limit (with ``valid`` False, signed by another
    key: verified and rejected, nothing stored but the rejection)."""
    if not valid:
        key = ed25519.Ed25519PrivateKey.generate()
    name = f"ghcr.io/bench/big{n}"
    base = len(sign(key, statement(name, digest_of(name))))
    items = (MAX_UPLOAD - base - 4096) * 3 // 4 // 8  # 8 bytes per {"k":n}, base64 4/3
    envelope = sign(key, statement(name, digest_of(f"{name}-{uuid.uuid4()}"), items))
    assert len(envelope) <= MAX_UPLOAD, len(envelope)
    return envelope


def review(images: list[str]) -> dict[str, Any]:
    uid = str(uuid.uuid4())
    containers = [{"name": f"c{i}", "image": image} for i, image in enumerate(images)]
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
                "spec": {"containers": containers},
            },
        },
    }


def image(n: int) -> str:
    return f"ghcr.io/bench/app{n}@sha256:{digest_of(f'app{n}')}"


class Phase:
    def __init__(self, base_url: str, tokens: dict[str, str], clients: int) -> None:
        self.base_url, self.tokens, self.clients = base_url, tokens, clients
        self.stop = threading.Event()
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.uploads: list[tuple[int, float]] = []
        self.lock = threading.Lock()

    def admit(self, number: int) -> None:
        headers = {"Authorization": f"Bearer {self.tokens['admission']}"}
        n = 0
        with httpx.Client(base_url=self.base_url, timeout=60) as client:
            while not self.stop.is_set():
                n += 1
                if n % 5 == 0:
                    cold = f"ghcr.io/bench/cold@sha256:{digest_of(f'{number}-{n}-{uuid.uuid4()}')}"
                    images = [cold]
                else:
                    images = [image((number * 7 + n + k) % IMAGES) for k in range(3)]
                body = review(images)
                started = time.perf_counter()
                response = client.post("/k8s/validate", json=body, headers=headers)
                elapsed = time.perf_counter() - started
                with self.lock:
                    if response.status_code != 200:
                        self.errors.append(f"{response.status_code} {response.text[:200]}")
                    else:
                        self.latencies.append(elapsed)
                time.sleep(0.005)

    def upload(self, bodies: list[bytes]) -> None:
        headers = {"Authorization": f"Bearer {self.tokens['upload']}"}
        with httpx.Client(base_url=self.base_url, timeout=300) as client:
            while not self.stop.is_set() and bodies:
                body = bodies.pop()
                started = time.perf_counter()
                response = client.post("/v1/attestations", content=body, headers=headers)
                with self.lock:
                    self.uploads.append((response.status_code, time.perf_counter() - started))

    def run(self, seconds: float, uploads: list[list[bytes]] | None) -> None:
        threads = [threading.Thread(target=self.admit, args=(n,)) for n in range(self.clients)]
        for bodies in uploads or []:
            threads.append(threading.Thread(target=self.upload, args=(bodies,)))
        for thread in threads:
            thread.start()
        time.sleep(seconds)
        self.stop.set()
        for thread in threads:
            thread.join()


def cpu_seconds(root: int) -> dict[str, float]:
    """CPU time so far (user + system) of the server process and of its children (the
    recorder and the ingest workers), from /proc (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    usage = {"server": 0.0, "children": 0.0}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry.name), int(fields[1])
        seconds = (int(fields[11]) + int(fields[12])) / tick
        if pid == root:
            usage["server"] += seconds
        elif ppid == root:
            usage["children"] += seconds
    return usage


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(values: list[float]) -> str:
    return " / ".join(
        f"{v * 1000:.0f}" for v in (min(values), statistics.median(values), max(values))
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--uploaders", type=int, default=8)
    parser.add_argument("--uploads-per-uploader", type=int, default=3)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument(
        "--invalid-uploads",
        action="store_true",
        help="uploads signed by an untrusted key: parsed and verified, then rejected (no store)",
    )
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="provenant-mixed-"))
    admin = None
    if args.backend == "postgresql":
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        db_name = f"provenant_bench_mixed_{os.getpid()}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{db_name}"'))
        url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{db_name}"
    else:
        url = f"sqlite:///{workdir / 'provenant.db'}"
    server = None
    try:
        upgrade(url)
        db = Database(url, pool_size=1)
        with db.session() as session:
            tokens = {s: create_token(session, f"bench-{s}", [s]) for s in ("upload", "admission")}
        db.dispose()
        key = ed25519.Ed25519PrivateKey.generate()
        policies = workdir / "policies"
        (policies / "keys").mkdir(parents=True)
        (policies / "keys" / "bench.pub").write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        (policies / "policies.yaml").write_text(POLICIES)

        port = 18000 + os.getpid() % 1000
        env = {
            **os.environ,
            "PROVENANT_DATABASE_URL": url,
            "PROVENANT_POLICY_DIR": str(policies),
            "PROVENANT_AUDIT_KEY_FILE": str(workdir / "audit-key.pem"),
            "PROVENANT_LOG_LEVEL": "warning",
        }
        log = (workdir / "server.log").open("wb")
        server = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base_url}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit(f"server did not start; see {workdir / 'server.log'}")
            time.sleep(0.2)

        headers = {"Authorization": f"Bearer {tokens['upload']}"}
        with httpx.Client(base_url=base_url, timeout=60) as client:
            for n in range(IMAGES):
                name = f"ghcr.io/bench/app{n}"
                r = client.post(
                    "/v1/attestations",
                    content=sign(key, statement(name, digest_of(f"app{n}"))),
                    headers=headers,
                )
                assert r.status_code == 201, r.text

        print(
            f"signing {args.runs * args.uploaders * args.uploads_per_uploader} maximum-size "
            "uploads ...",
            flush=True,
        )
        batches = [
            [
                [
                    maximum_size_upload(key, r * 1000 + u * 100 + k, not args.invalid_uploads)
                    for k in range(args.uploads_per_uploader)
                ]
                for u in range(args.uploaders)
            ]
            for r in range(args.runs)
        ]
        size = len(batches[0][0][0])
        print(
            f"python {platform.python_version()}, {os.cpu_count()} CPUs (shared), "
            f"backend {args.backend}, {args.clients} admission clients, "
            f"{args.uploaders} uploaders of {size / 2**20:.2f} MiB "
            f"({'invalid' if args.invalid_uploads else 'valid'}), {args.seconds:g} s phases"
        )
        # Warm the decision cache and the ingest workers.
        Phase(base_url, tokens, args.clients).run(2.0, None)

        quiet_p99, loaded_p99, ratios = [], [], []
        for run in range(args.runs):
            results = {}
            for name, uploads in (("quiet", None), ("loaded", batches[run])):
                phase = Phase(base_url, tokens, args.clients)
                before = cpu_seconds(server.pid)
                phase.run(args.seconds, uploads)
                after = cpu_seconds(server.pid)
                lat = phase.latencies
                results[name] = percentile(lat, 0.99)
                uploaded = sorted(phase.uploads, key=lambda u: u[1])
                statuses: dict[int, int] = {}
                for status, _ in uploaded:
                    statuses[status] = statuses.get(status, 0) + 1
                upload_note = (
                    f"; uploads {statuses}, latency median "
                    f"{statistics.median(u[1] for u in uploaded):.1f} s"
                    if uploaded
                    else ""
                )
                print(
                    f"run {run + 1} {name:6}: {len(lat)} admissions, p50 "
                    f"{percentile(lat, 0.5) * 1000:.1f} ms, p99 {results[name] * 1000:.1f} ms, "
                    f"max {max(lat) * 1000:.1f} ms, errors {len(phase.errors)}{upload_note}; "
                    f"CPU s server {after['server'] - before['server']:.1f}, its children "
                    f"{after['children'] - before['children']:.1f}",
                    flush=True,
                )
                for error in phase.errors[:3]:
                    print("   ", error)
            quiet_p99.append(results["quiet"])
            loaded_p99.append(results["loaded"])
            ratios.append(results["loaded"] / results["quiet"])
        print(f"admission p99 quiet  (min / median / max over runs): {summary(quiet_p99)} ms")
        print(f"admission p99 loaded (min / median / max over runs): {summary(loaded_p99)} ms")
        print(
            "ratio loaded / quiet p99 (min / median / max): "
            + " / ".join(f"{r:.2f}" for r in (min(ratios), statistics.median(ratios), max(ratios)))
            + f"  (target <= 2: {'met' if statistics.median(ratios) <= 2 else 'NOT met'})"
        )
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
            admin.dispose()


if __name__ == "__main__":
    main()
