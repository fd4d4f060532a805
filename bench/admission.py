"""Admission webhook throughput and latency, next to a bare echo of the same AdmissionReviews.

1. Seeds N attestations (default 100 000) straight into the attestation tables with bulk
   inserts: rows built by ingest's own ``build_attestation`` from fake but well-formed verified
   facts (keyless GitHub Actions signers, SLSA v1 provenance). Three images in four are attested
   by the release workflow and pass the bench policy; the others only by a fork's workflow or
   a non-tag build, and fail it.
2. Starts a real ``provenant serve`` (HTTPS, one worker, which records decisions through its
   recorder child process: PROVENANT_ADMISSION_RECORDER, default ``process``) on that database,
   and the bare FastAPI echo of bench/echo_app.py, served by uvicorn the same way.
3. Sends AdmissionReview v1 requests for 3-container Pods (80% allowed, 20% with one denied
   image) at 50 concurrent connections, a bounded number per run, 3 runs per side, interleaved
   (echo, webhook, echo, ...), and prints requests/s, p50 and p99 (min / median / max over
   the runs) and the targets: webhook requests/s >= 60% of the echo's, p99 <= 2x the echo's.

Two webhook workloads: "cold", where every Pod brings images the server has never decided
(each a database lookup and a full policy evaluation), and "warm", where 500 Pods decided just
before come back (within the decision cache's lifetime), as replicas of a Deployment do. Every
request is still authenticated, parsed, decided and recorded with its audit event.
Loopback only; each run is bounded in requests and time.
The load comes from wrk (Debian package ``wrk``) when installed, else from an httpx client in
this process (which then competes with the servers for the CPU: the figures say which).

    .venv/bin/python bench/admission.py [--attestations 100000] [--requests 3000]
        [--concurrency 50] [--runs 3] [--backend sqlite|postgresql|both]

PostgreSQL: 127.0.0.1:5432, user postgres (or PROVENANT_BENCH_PG_URL, an admin URL); the
bench creates and drops its own database ``provenant_bench_<pid>``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import json
import os
import platform
import random
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
from sqlalchemy import create_engine, insert, text  # noqa: E402

from app.admission.certs import write_webhook_certs  # noqa: E402
from app.attestations.models import Attestation, AttestationSubject  # noqa: E402
from app.attestations.service import build_attestation  # noqa: E402
from app.auth.service import create_token  # noqa: E402
from app.db import Database  # noqa: E402
from app.migrate import upgrade  # noqa: E402
from app.verification.facts import SignerFacts, Subject, TlogFacts, VerifiedDocument  # noqa: E402

PG_ADMIN_URL = os.environ.get(
    "PROVENANT_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
GITHUB = "https://token.actions.githubusercontent.com"
SLSA_V1 = "https://slsa.dev/provenance/v1"
BUILDER = "https://github.com/actions/runner/github-hosted"
REGISTRY = "ghcr.io/bench"
NAMESPACE = "prod-bench"
ALLOWED_SHARE = 0.8
RUN_TIMEOUT = 120.0  # seconds: no run outlives this, whatever --requests says

POLICIES = r"""
apiVersion: provenant.dev/v1alpha1
kind: ImagePolicy
metadata: {name: bench-release}
spec:
  images: ["ghcr.io/bench/**"]
  mode: enforce
  onError: deny
  authorities:
    - name: release-workflow
      keyless:
        trustRoot: public-good
        identities:
          - issuer: https://token.actions.githubusercontent.com
            subjectRegExp: '^https://github\.com/bench/[^/]+/\.github/workflows/release\.yml@refs/tags/v.*$'
        claims:
          sourceRepositoryOwnerURI: https://github.com/bench
  require:
    - name: release-provenance
      predicateType: https://slsa.dev/provenance/v1
      authorities: [release-workflow]
      slsa:
        builderId: https://github.com/actions/runner/github-hosted
      conditions:
        - expression: >-
            predicate.buildDefinition.externalParameters.workflow.ref.startsWith("refs/tags/")
          message: release images are built from tags
---
apiVersion: provenant.dev/v1alpha1
kind: PolicyConfig
metadata: {name: bench}
spec:
  noMatch: deny
  tagOnly: deny
  excludedNamespaces: [kube-system]
"""


# --- seeding ----------------------------------------------------------------------------------


def _fake_certificate_pem() -> str:
    """A PEM of the size of a Fulcio certificate: ingest stores one per keyless signer."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sigstore.dev")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(minutes=10))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.UniformResourceIdentifier(
                        "https://github.com/bench/app/.github/workflows/release.yml@refs/tags/v1.0.0"
                    )
                ]
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _signer(repo: str, workflow_ref: str, certificate_pem: str) -> SignerFacts:
    owner = repo.rsplit("/", 1)[0]
    san = f"{repo}/.github/workflows/release.yml@{workflow_ref}"
    return SignerFacts(
        kind="keyless",
        issuer=GITHUB,
        san=san,
        extensions={
            "issuer": GITHUB,
            "githubWorkflowTrigger": "push",
            "githubWorkflowSHA": "c" * 40,
            "githubWorkflowName": "release",
            "githubWorkflowRepository": repo.removeprefix("https://github.com/"),
            "githubWorkflowRef": workflow_ref,
            "buildSignerURI": san,
            "buildSignerDigest": "c" * 40,
            "runnerEnvironment": "github-hosted",
            "sourceRepositoryURI": repo,
            "sourceRepositoryDigest": "c" * 40,
            "sourceRepositoryRef": workflow_ref,
            "sourceRepositoryOwnerURI": owner,
            "buildConfigURI": san,
            "buildTrigger": "push",
            "runInvocationURI": f"{repo}/actions/runs/1/attempts/1",
            "sourceRepositoryVisibilityAtSigning": "public",
        },
        certificate_pem=certificate_pem,
    )


def _statement(image: str, digest: str, repo: str, ref: str) -> dict[str, Any]:
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": image, "digest": {"sha256": digest}}],
        "predicateType": SLSA_V1,
        "predicate": {
            "buildDefinition": {
                "buildType": "https://actions.github.io/buildtypes/workflow/v1",
                "externalParameters": {
                    "workflow": {
                        "ref": ref,
                        "repository": repo,
                        "path": ".github/workflows/release.yml",
                    }
                },
                "internalParameters": {
                    "github": {
                        "event_name": "push",
                        "repository_id": "1",
                        "runner_environment": "github-hosted",
                    }
                },
                "resolvedDependencies": [
                    {"uri": f"git+{repo}@{ref}", "digest": {"gitCommit": "c" * 40}}
                ],
            },
            "runDetails": {
                "builder": {"id": BUILDER},
                "metadata": {"invocationId": f"{repo}/actions/runs/1/attempts/1"},
            },
        },
    }


@dataclasses.dataclass
class Images:
    good: list[str]  # image@sha256 references the bench policy admits
    bad: list[str]  # ... and denies (attested, but by the wrong workflow or from a branch)


def _document(
    index: int, image: str, digest: str, *, good: bool, variant: int, certificate_pem: str
) -> VerifiedDocument:
    app = image.rsplit("/", 1)[1]
    repo = f"https://github.com/bench/{app}"
    if good:
        signer, ref = _signer(repo, "refs/tags/v1.0.0", certificate_pem), "refs/tags/v1.0.0"
    elif variant % 2 == 0:  # a fork's workflow: the identity and owner claim do not match
        fork = f"https://github.com/forks/{app}"
        signer, ref = _signer(fork, "refs/tags/v1.0.0", certificate_pem), "refs/tags/v1.0.0"
    else:  # the release workflow, run from a branch: the tag condition fails
        signer, ref = _signer(repo, "refs/heads/main", certificate_pem), "refs/heads/main"
    integrated = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=index)
    statement = _statement(image, digest, repo, ref)
    return VerifiedDocument(
        format="sigstore-bundle",
        media_type="application/vnd.dev.sigstore.bundle.v0.3+json",
        signers=[signer],
        trust_root="public-good",
        tlog=[
            TlogFacts(
                log_id="c0d23d6ad406973f9559f3ba2d1ca01f84147d8ffc5b8445c224f98b9591801d",
                log_index=100_000_000 + index,
                integrated_time=integrated,
                kind="dsse",
                kind_version="0.0.1",
                inclusion="proof",
            )
        ],
        timestamps=[integrated],
        content_kind="statement",
        statement=statement,
        predicate_type=SLSA_V1,
        subjects=[Subject(name=image, digests={"sha256": digest})],
    )


def seed(url: str, attestations: int, batch: int = 5000) -> Images:
    """Two attestations per image: good images get a passing one (the newest) and a failing
    one, bad images two failing ones. Bulk Core inserts, as ingest's own ``_insert`` does."""
    certificate_pem = _fake_certificate_pem()
    rng = random.Random(20260301)
    images = Images([], [])
    attestation_table, subject_table = Attestation.__table__, AttestationSubject.__table__
    columns = [c.key for c in attestation_table.columns]
    engine = create_engine(url)
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    subjects: list[dict[str, Any]] = []

    def flush() -> None:
        with engine.begin() as conn:
            conn.execute(insert(attestation_table), rows)
            conn.execute(insert(subject_table), subjects)
        rows.clear()
        subjects.clear()

    for index in range(attestations):
        number = index // 2
        good = number % 4 != 0  # three images in four pass
        name = f"{REGISTRY}/app-{number % 500}"
        digest = hashlib.sha256(f"bench-image-{number}".encode()).hexdigest()
        if index % 2 == 0:
            (images.good if good else images.bad).append(f"{name}@sha256:{digest}")
        # The second attestation of a good image is the passing one, and the newer.
        passing = good and index % 2 == 1
        document = _document(
            index,
            name,
            digest,
            good=passing,
            variant=rng.randrange(2),
            certificate_pem=certificate_pem,
        )
        raw_digest = hashlib.sha256(f"bench-upload-{index}".encode()).hexdigest()
        row = build_attestation(
            document, raw_digest, 4000 + index % 1000, "bench-ci", list(document.subjects)
        )
        row.uploaded_at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=index)
        rows.append({key: getattr(row, key) for key in columns})
        subjects.extend(
            {
                "attestation_id": raw_digest,
                "name": s.name,
                "algorithm": s.algorithm,
                "digest": s.digest,
            }
            for s in row.subjects
        )
        if len(rows) >= batch:
            flush()
    if rows:
        flush()
    engine.dispose()
    elapsed = time.perf_counter() - started
    print(
        f"  seeded {attestations} attestations ({len(images.good)} admitted images, "
        f"{len(images.bad)} denied) in {elapsed:.1f} s",
        flush=True,
    )
    return images


# --- requests ---------------------------------------------------------------------------------


def admission_review(pod_number: int, images: list[str]) -> dict[str, Any]:
    """What kube-apiserver sends for `kubectl apply` of a 3-container Pod."""
    name = f"web-{pod_number}"
    uid = str(uuid.UUID(int=random.getrandbits(128)))
    containers = []
    for index, image in enumerate(images):
        cname = ("app", "sidecar", "metrics")[index % 3]
        containers.append(
            {
                "name": cname,
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "ports": [{"containerPort": 8080 + index, "name": f"p{index}", "protocol": "TCP"}],
                "env": [
                    {"name": "LOG_LEVEL", "value": "info"},
                    {
                        "name": "POD_NAME",
                        "valueFrom": {
                            "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}
                        },
                    },
                ],
                "resources": {
                    "requests": {"cpu": "100m", "memory": "128Mi"},
                    "limits": {"cpu": "500m", "memory": "256Mi"},
                },
                "volumeMounts": [
                    {
                        "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                        "name": "kube-api-access",
                        "readOnly": True,
                    }
                ],
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "runAsNonRoot": True,
                    "capabilities": {"drop": ["ALL"]},
                },
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
            }
        )
    pod = {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "uid": str(uuid.UUID(int=random.getrandbits(128))),
            "creationTimestamp": "2026-03-01T12:00:00Z",
            "labels": {"app": "web", "pod-template-hash": "5d4f8c7b9"},
            "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-03-01T11:59:00Z"},
            "managedFields": [
                {
                    "manager": "kubectl-client-side-apply",
                    "operation": "Update",
                    "apiVersion": "v1",
                    "time": "2026-03-01T12:00:00Z",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {
                        "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                        "f:spec": {
                            "f:containers": {
                                f'k:{{"name":"{c["name"]}"}}': {
                                    ".": {},
                                    "f:image": {},
                                    "f:name": {},
                                }
                                for c in containers
                            }
                        },
                    },
                }
            ],
        },
        "spec": {
            "volumes": [
                {
                    "name": "kube-api-access",
                    "projected": {
                        "sources": [
                            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                            {
                                "configMap": {
                                    "name": "kube-root-ca.crt",
                                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                                }
                            },
                        ],
                        "defaultMode": 420,
                    },
                }
            ],
            "containers": containers,
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default",
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "schedulerName": "default-scheduler",
            "enableServiceLinks": True,
            "priority": 0,
        },
        "status": {"phase": "Pending", "qosClass": "Burstable"},
    }
    return {
        "kind": "AdmissionReview",
        "apiVersion": "admission.k8s.io/v1",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "name": name,
            "namespace": NAMESPACE,
            "operation": "CREATE",
            "userInfo": {
                "username": "system:serviceaccount:kube-system:replicaset-controller",
                "uid": "7d6b1f3e-0000-4000-8000-000000000001",
                "groups": [
                    "system:serviceaccounts",
                    "system:serviceaccounts:kube-system",
                    "system:authenticated",
                ],
            },
            "object": pod,
            "oldObject": None,
            "dryRun": False,
            "options": {
                "kind": "CreateOptions",
                "apiVersion": "meta.k8s.io/v1",
                "fieldManager": "kubectl-client-side-apply",
            },
        },
    }


def with_new_uid(body: str) -> str:
    review = json.loads(body)
    review["request"]["uid"] = str(uuid.UUID(int=random.getrandbits(128)))
    return json.dumps(review, separators=(",", ":"))


class Pods:
    """Hands out Pods whose images are drawn without replacement: a "cold" Pod's images were
    never decided before by the server."""

    def __init__(self, images: Images, seed_value: int = 7) -> None:
        rng = random.Random(seed_value)
        self.good, self.bad = list(images.good), list(images.bad)
        rng.shuffle(self.good)
        rng.shuffle(self.bad)
        self.rng = rng
        self.count = 0

    def take(self, n: int) -> list[str]:
        bodies = []
        for _ in range(n):
            if self.rng.random() < ALLOWED_SHARE:
                chosen = [self.good.pop() for _ in range(3)]
            else:
                chosen = [self.good.pop(), self.bad.pop(), self.good.pop()]
                self.rng.shuffle(chosen)
            bodies.append(json.dumps(admission_review(self.count, chosen), separators=(",", ":")))
            self.count += 1
        return bodies

    def left(self) -> int:
        return capacity(len(self.good), len(self.bad))


def capacity(good: int, bad: int) -> int:
    """How many Pods the images last for, with a margin for the random mix."""
    per_pod_good = 3 * ALLOWED_SHARE + 2 * (1 - ALLOWED_SHARE)
    return int(min(good / per_pod_good, bad / (1 - ALLOWED_SHARE)) * 0.95)


# --- servers ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Served:
    """A server process on a loopback port, over HTTPS, waited on until /healthz answers."""

    def __init__(
        self, name: str, args: list[str], env: dict[str, str], workdir: Path, ca_file: Path
    ) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.args = [a.replace("{port}", str(self.port)) for a in args]
        self.env = env
        self.log_path = workdir / f"{name}-{self.port}.log"
        self.context = ssl.create_default_context(cafile=str(ca_file))
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Served:
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self.args, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", verify=self.context, timeout=2).is_success:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.__exit__()
        raise RuntimeError(f"{self.name} did not start:\n{self.log_path.read_text()[-3000:]}")

    def __exit__(self, *exc: object) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def rss_mb(self) -> float | None:
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()  # type: ignore[union-attr]
        except OSError:
            return None
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return None


# --- load -------------------------------------------------------------------------------------

WRK_SCRIPT = r"""
-- Each thread sends its share of the bodies, stops after `limit` answers and leaves a file
-- with its first-request and last-answer times (CLOCK_MONOTONIC, microseconds); the bench
-- then interrupts wrk, whose duration would otherwise be the -d safety bound.
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now_us()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) * 1000000 + math.floor(tonumber(ts.tv_nsec) / 1000)
end

local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  bodies = {}
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
  limit = tonumber(args[2])
  nthreads = tonumber(args[3])
  headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. args[4]}
  marker = args[5]
  index = tid
  answered = 0; allowed = 0; denied = 0; failed = 0
  first = nil
end

function request()
  if first == nil then first = now_us() end
  local body = bodies[(index % #bodies) + 1]
  index = index + nthreads
  return wrk.format("POST", nil, headers, body)
end

function response(status, headers, body)
  answered = answered + 1
  if status ~= 200 then
    failed = failed + 1
  elseif string.find(body, '"allowed"%s*:%s*true') then
    allowed = allowed + 1
  else
    denied = denied + 1
  end
  if answered == limit then
    local f = io.open(marker .. tid, "w")
    f:write(string.format("%d %d\n", first, now_us()))
    f:close()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local a, d, f = 0, 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("allowed"); d = d + t:get("denied"); f = f + t:get("failed")
  end
  local e = summary.errors
  io.write(string.format(
    'WRK-JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"allowed":%d,"denied":%d,"failed":%d,"socket_errors":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, a, d, f, e.connect + e.read + e.write + e.timeout))
end
"""


@dataclasses.dataclass
class Result:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    allowed: int
    denied: int
    failed: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


class Load:
    def __init__(self, workdir: Path, token: str, concurrency: int) -> None:
        self.workdir = workdir
        self.token = token
        self.concurrency = concurrency
        self.wrk = shutil.which("wrk")
        self.threads = max(1, min(2, os.cpu_count() or 1))
        if self.wrk:
            (workdir / "bench.lua").write_text(WRK_SCRIPT)

    @property
    def name(self) -> str:
        if self.wrk:
            return f"wrk ({self.threads} threads, {self.concurrency} connections)"
        return f"httpx in the bench process ({self.concurrency} connections; competes for CPU)"

    def run(self, url: str, bodies: list[str]) -> Result:
        return self._wrk(url, bodies) if self.wrk else asyncio.run(self._httpx(url, bodies))

    def _wrk(self, url: str, bodies: list[str]) -> Result:
        """``bodies`` holds the requests to answer plus ``concurrency`` spares: requests still
        in flight when a thread stops use them, so that no body is sent twice."""
        per_thread = max(1, (len(bodies) - self.concurrency) // self.threads)
        path = self.workdir / "bodies.jsonl"
        path.write_text("\n".join(bodies) + "\n")
        marker = self.workdir / "wrk-done-"
        for old in self.workdir.glob("wrk-done-*"):
            old.unlink()
        command = [
            self.wrk,
            f"-t{self.threads}",
            f"-c{self.concurrency}",
            f"-d{int(RUN_TIMEOUT)}s",
            "--timeout",
            "10s",
            "-s",
            str(self.workdir / "bench.lua"),
            f"{url}/k8s/validate",
            "--",
            str(path),
            str(per_thread),
            str(self.threads),
            self.token,
            str(marker),
        ]
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + RUN_TIMEOUT + 10
        while process.poll() is None and time.monotonic() < deadline:
            if len(list(self.workdir.glob("wrk-done-*"))) == self.threads:
                break
            time.sleep(0.02)
        if process.poll() is None:
            process.send_signal(signal.SIGINT)  # wrk then stops, prints and runs done()
        try:
            stdout, stderr = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
        line = next((x for x in stdout.splitlines() if x.startswith("WRK-JSON ")), None)
        if line is None:
            raise RuntimeError(f"wrk failed ({process.returncode}):\n{stdout}\n{stderr}")
        data = json.loads(line.removeprefix("WRK-JSON "))
        windows = [tuple(map(int, p.read_text().split())) for p in self.workdir.glob("wrk-done-*")]
        if len(windows) != self.threads:
            print(
                f"    warning: only {len(windows)} of {self.threads} wrk threads finished "
                f"within {RUN_TIMEOUT:.0f} s",
                flush=True,
            )
        seconds = (
            (max(w[1] for w in windows) - min(w[0] for w in windows)) / 1e6
            if len(windows) == self.threads
            else data["duration_us"] / 1e6
        )
        if data["socket_errors"]:
            print(f"    warning: {data['socket_errors']} socket errors", flush=True)
        answered = data["allowed"] + data["denied"] + data["failed"]
        return Result(
            answered,
            seconds,
            data["p50_us"] / 1000,
            data["p99_us"] / 1000,
            data["allowed"],
            data["denied"],
            data["failed"],
        )

    async def _httpx(self, url: str, bodies: list[str]) -> Result:
        context = ssl.create_default_context(cafile=str(self.workdir / "certs" / "ca.crt"))
        latencies: list[float] = []
        outcome = {"allowed": 0, "denied": 0, "failed": 0}
        queue = iter(bodies[: max(1, len(bodies) - self.concurrency)])  # no spares needed
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"}
        deadline = time.monotonic() + RUN_TIMEOUT
        limits = httpx.Limits(
            max_connections=self.concurrency, max_keepalive_connections=self.concurrency
        )
        async with httpx.AsyncClient(verify=context, limits=limits, timeout=10) as client:

            async def worker() -> None:
                for body in queue:
                    if time.monotonic() > deadline:
                        return
                    started = time.perf_counter()
                    try:
                        reply = await client.post(
                            f"{url}/k8s/validate", content=body, headers=headers
                        )
                    except httpx.HTTPError:
                        outcome["failed"] += 1
                        continue
                    latencies.append(time.perf_counter() - started)
                    if reply.status_code != 200:
                        outcome["failed"] += 1
                    elif reply.json()["response"]["allowed"]:
                        outcome["allowed"] += 1
                    else:
                        outcome["denied"] += 1

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(self.concurrency)))
            elapsed = time.perf_counter() - started
        latencies.sort()
        return Result(
            len(latencies),
            elapsed,
            percentile(latencies, 50) * 1000,
            percentile(latencies, 99) * 1000,
            **outcome,
        )


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, round(pct / 100 * (len(values) - 1)))]


# --- the run ----------------------------------------------------------------------------------


@contextmanager
def database(backend: str, workdir: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{workdir / 'bench.db'}"
        return
    name = f"provenant_bench_{os.getpid()}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def summarize(results: list[Result]) -> dict[str, tuple[float, float, float]]:
    def three(values: list[float]) -> tuple[float, float, float]:
        return min(values), statistics.median(values), max(values)

    return {
        "rps": three([r.rps for r in results]),
        "p50": three([r.p50_ms for r in results]),
        "p99": three([r.p99_ms for r in results]),
    }


def row(label: str, results: list[Result]) -> str:
    s = summarize(results)
    answered = sum(r.allowed + r.denied for r in results)
    allowed = sum(r.allowed for r in results)
    failed = sum(r.failed for r in results)
    share = f"{100 * allowed / answered:.0f}% allowed" if answered else "-"
    return (
        f"  {label:16} {s['rps'][0]:7.0f} {s['rps'][1]:7.0f} {s['rps'][2]:7.0f}  "
        f"{s['p50'][0]:6.1f} {s['p50'][1]:6.1f} {s['p50'][2]:6.1f}  "
        f"{s['p99'][0]:6.1f} {s['p99'][1]:6.1f} {s['p99'][2]:6.1f}  "
        f"{share}{f', {failed} FAILED' if failed else ''}"
    )


def bench_backend(backend: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    print(f"\n== {backend} ==", flush=True)
    images_seeded = args.attestations // 2
    needed = (
        1
        + args.requests // 4
        + args.warm_pods
        + args.runs * args.requests
        + (args.runs + 2) * args.concurrency
    )
    if capacity(images_seeded * 3 // 4, images_seeded // 4) < needed:
        raise SystemExit(
            f"--attestations {args.attestations} seeds too few images for "
            f"{needed} cold Pods; raise it or lower --requests/--runs"
        )
    with database(backend, workdir) as url:
        upgrade(url)
        images = seed(url, args.attestations)
        db = Database(url, pool_size=1)
        with db.session() as session:
            token = create_token(session, "bench-apiserver", ["admission"])
        db.dispose()

        policy_dir = workdir / "policies"
        policy_dir.mkdir(exist_ok=True)
        (policy_dir / "bench.yaml").write_text(textwrap.dedent(POLICIES).lstrip())
        certs = workdir / "certs"
        env = {
            **os.environ,
            "PROVENANT_DATABASE_URL": url,
            "PROVENANT_POLICY_DIR": str(policy_dir),
            "PROVENANT_AUDIT_KEY_FILE": str(workdir / f"audit-key-{backend}.pem"),
            "PROVENANT_LOG_LEVEL": args.log_level,
        }
        tls = ["--tls-cert", str(certs / "tls.crt"), "--tls-key", str(certs / "tls.key")]
        webhook_args = [
            sys.executable,
            "-m",
            "app.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "{port}",
            *tls,
        ]
        echo_args = [
            sys.executable,
            str(REPO / "bench" / "echo_app.py"),
            "--host",
            "127.0.0.1",
            "--port",
            "{port}",
            "--log-level",
            args.log_level,
            *tls,
        ]
        load = Load(workdir, token, args.concurrency)
        pods = Pods(images)
        with (
            Served("echo", echo_args, env, workdir, certs / "ca.crt") as echo,
            Served("provenant", webhook_args, env, workdir, certs / "ca.crt") as webhook,
        ):
            if not probe(webhook, token, pods.take(1)[0]):
                return {}
            spares = args.concurrency  # see Load._wrk
            # Warm-up: connections, code paths, pools; not measured.
            warmup = pods.take(args.requests // 4 + spares)
            load.run(echo.url, warmup)
            load.run(webhook.url, warmup)
            warm_bodies = pods.take(args.warm_pods + spares)
            results: dict[str, list[Result]] = {"echo": [], "webhook cold": [], "webhook warm": []}
            for run in range(args.runs):
                cold = pods.take(args.requests + spares)
                # The same Pods again (new request uids, as the apiserver would send them),
                # decided once just before, within the decision cache's lifetime.
                repeat = [
                    with_new_uid(warm_bodies[(run * 7 + i) % args.warm_pods])
                    for i in range(args.requests + spares)
                ]
                for label, server, bodies in (
                    ("echo", echo, cold),
                    ("webhook cold", webhook, cold),
                    ("webhook warm", webhook, repeat),
                ):
                    if label == "webhook warm":
                        load.run(webhook.url, [with_new_uid(b) for b in warm_bodies])
                    result = load.run(server.url, bodies)
                    results[label].append(result)
                    print(
                        f"  run {run + 1} {label:13} {result.rps:7.0f} req/s  "
                        f"p50 {result.p50_ms:6.1f} ms  p99 {result.p99_ms:6.1f} ms  "
                        f"({result.requests} answered: {result.allowed} allowed, "
                        f"{result.denied} denied, {result.failed} failed)",
                        flush=True,
                    )
            rss = webhook.rss_mb()
    return {"results": results, "load": load.name, "rss": rss}


def probe(webhook: Served, token: str, body: str) -> bool:
    """The endpoint exists and answers the contract; else say so and skip the backend."""
    reply = httpx.post(
        f"{webhook.url}/k8s/validate",
        content=body,
        verify=webhook.context,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=30,
    )
    if reply.status_code == 404:
        print("  POST /k8s/validate does not exist in this build yet: nothing to measure")
        return False
    reply.raise_for_status()
    answer = reply.json()
    uid = json.loads(body)["request"]["uid"]
    assert answer["response"]["uid"] == uid, answer
    assert isinstance(answer["response"]["allowed"], bool), answer
    return True


def report(backend: str, measured: dict[str, Any]) -> None:
    results = measured["results"]
    print(
        f"\n{backend}: {measured['load']}; server RSS after the runs "
        f"{measured['rss'] or float('nan'):.0f} MB"
    )
    print(
        "                     req/s (min  median  max)   p50 ms (min med max)  p99 ms (min med max)"
    )
    for label, runs in results.items():
        print(row(label, runs))
    echo = summarize(results["echo"])
    for label in ("webhook cold", "webhook warm"):
        mine = summarize(results[label])
        share = mine["rps"][1] / echo["rps"][1]
        factor = mine["p99"][1] / echo["p99"][1]
        print(
            f"  {label}: {100 * share:.0f}% of the echo's req/s (target >= 60%: "
            f"{'met' if share >= 0.6 else 'NOT met'}), p99 {factor:.2f}x the echo's "
            f"(target <= 2x: {'met' if factor <= 2 else 'NOT met'})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--attestations", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=3000, help="requests per run")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3, help="runs per side")
    parser.add_argument(
        "--warm-pods", type=int, default=500, help="distinct Pods the warm workload cycles through"
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument(
        "--log-level",
        default="warning",
        help="both servers' log level (info adds an access log line a request)",
    )
    args = parser.parse_args()
    # `timeout` and friends send SIGTERM: unwind, so that the servers and wrk are stopped and
    # the PostgreSQL database dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    print(
        f"admission bench: {args.attestations} attestations, 3-container Pods "
        f"({100 * ALLOWED_SHARE:.0f}% allowed), {args.concurrency} connections, "
        f"{args.requests} requests a run, {args.runs} runs a side, HTTPS, one server "
        f"process each (the webhook's records through "
        f"{os.environ.get('PROVENANT_ADMISSION_RECORDER', 'process')}); "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    measured: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="provenant-bench-") as tmp:
        workdir = Path(tmp)
        write_webhook_certs(workdir / "certs", "provenant", "bench", ip_addresses=["127.0.0.1"])
        for backend in backends:
            result = bench_backend(backend, args, workdir)
            if result:
                measured[backend] = result
    for backend, result in measured.items():
        report(backend, result)
    if not measured:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
