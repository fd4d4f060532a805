"""Audit log benchmarks: append throughput (target at least 1,000 events/s) and proof latency.

Appends go through ``record_event`` exactly as the other domains call it: one event per
transaction (each upload or decision is its own transaction), from one thread and from several
threads contending for the log head. Runs on a fresh SQLite file and a fresh PostgreSQL
database (created next to --pg-url's database and dropped afterwards), and prints events/s.

Appends are serialized by the log head's row lock, which is held until the caller's commit, so
on PostgreSQL every append waits for the previous one's WAL flush: throughput is about
1 / (commit latency). The "no flush wait" line repeats the run with the bench's own sessions
set to synchronous_commit=off (nothing else changes) to show what the log itself costs, which
is what a disk with fast fsync approaches.

Decision queries: see decision_queries() below (PostgreSQL only; --decisions to scale down).

    .venv/bin/python bench/audit.py [-n 3000] [--threads 8] [--pg-url URL] [--skip-pg]
        [--decisions 1000000] [--decisions-only]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from sqlalchemy import create_engine, event, text  # noqa: E402

from app.audit.query_router import PAGE  # noqa: E402
from app.audit.service import AuditLog, record_event  # noqa: E402
from app.audit.tree import TreeReader, tree_size  # noqa: E402
from app.db import Database  # noqa: E402
from app.migrate import upgrade  # noqa: E402

TARGET = 1000.0
PAYLOAD = {
    "sha256": "ab" * 32,
    "size": 4711,
    "code": "signature_invalid",
    "message": "the DSSE signature does not verify with any configured key",
}


@contextmanager
def sqlite_database() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        upgrade(url)
        yield url


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"provenant_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def append_serial(db: Database, count: int) -> float:
    start = time.perf_counter()
    for i in range(count):
        with db.session() as session:
            record_event(session, "bench.event", "bench", {**PAYLOAD, "i": i})
    return count / (time.perf_counter() - start)


def append_threads(db: Database, count: int, threads: int) -> float:
    per_thread = count // threads

    def work(worker: int) -> None:
        for i in range(per_thread):
            with db.session() as session:
                record_event(session, "bench.event", "bench", {**PAYLOAD, "w": worker, "i": i})

    pool = [threading.Thread(target=work, args=(w,)) for w in range(threads)]
    start = time.perf_counter()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return per_thread * threads / (time.perf_counter() - start)


def proof_latency(db: Database, log: AuditLog, samples: int = 300) -> dict[str, float]:
    start = time.perf_counter()
    log.make_checkpoint()  # also fills the subtree cache, as the periodic task does
    checkpoint_ms = (time.perf_counter() - start) * 1000
    with db.session() as session:
        size = tree_size(session)
    rng = random.Random(1)
    timings = []
    for _ in range(samples):
        seq = rng.randrange(size)
        t0 = time.perf_counter()
        with db.session() as session:
            TreeReader(session).inclusion_proof(seq, size)
        timings.append((time.perf_counter() - t0) * 1000)
    timings.sort()
    return {
        "checkpoint_ms": checkpoint_ms,
        "p50_ms": statistics.median(timings),
        "p99_ms": timings[int(len(timings) * 0.99) - 1],
    }


def commit_latency_ms(db: Database, samples: int = 200) -> float:
    """A bare one-row INSERT + COMMIT: the floor under any durable append."""
    with db.engine.begin() as conn:
        conn.execute(text("CREATE TABLE bench_probe (id INTEGER PRIMARY KEY)"))
    start = time.perf_counter()
    for i in range(samples):
        with db.engine.begin() as conn:
            conn.execute(text("INSERT INTO bench_probe (id) VALUES (:i)"), {"i": i})
    elapsed = (time.perf_counter() - start) / samples * 1000
    with db.engine.begin() as conn:
        conn.execute(text("DROP TABLE bench_probe"))
    return elapsed


def no_flush_wait(url: str, count: int, threads: int) -> tuple[float, float]:
    db = Database(url, pool_size=threads + 2)

    @event.listens_for(db.engine, "connect")
    def _async_commit(dbapi_connection: object, _record: object) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("SET synchronous_commit = off")
        cursor.close()
        dbapi_connection.commit()

    try:
        return append_serial(db, count), append_threads(db, count, threads)
    finally:
        db.dispose()


def run(backend: str, url: str, count: int, threads: int) -> bool:
    db = Database(url, pool_size=threads + 2)
    try:
        floor = commit_latency_ms(db)
        serial = append_serial(db, count)
        concurrent = append_threads(db, count, threads)
        log = AuditLog(db, Ed25519PrivateKey.generate(), "bench/audit")
        latency = proof_latency(db, log)
        verify_start = time.perf_counter()
        report = log.verify()
        verify_s = time.perf_counter() - verify_start
    finally:
        db.dispose()
    ok = min(serial, concurrent) >= TARGET and report.ok
    print(
        f"{backend:10} append 1 thread {serial:8.0f} events/s | {threads} threads "
        f"{concurrent:8.0f} events/s | target {TARGET:.0f}: {'PASS' if ok else 'FAIL'}"
    )
    print(f"{'':10} (a bare INSERT + COMMIT takes {floor:.2f} ms here)")
    if backend == "postgresql":
        serial_nw, concurrent_nw = no_flush_wait(url, count, threads)
        print(
            f"{'':10} no flush wait: 1 thread {serial_nw:8.0f} events/s | {threads} threads "
            f"{concurrent_nw:8.0f} events/s (synchronous_commit=off; not a durable setting)"
        )
    print(
        f"{'':10} tree {report.tree_size} events: checkpoint {latency['checkpoint_ms']:.1f} ms, "
        f"inclusion proof p50 {latency['p50_ms']:.2f} ms p99 {latency['p99_ms']:.2f} ms, "
        f"full verify {verify_s:.2f} s ({report.tree_size / verify_s:.0f} events/s)"
    )
    return ok


# ---------------------------------------------------------------------------------------------
# Decision queries (the other half of issue 6's benchmark): GET /v1/decisions?digest=... with
# 1M decisions in PostgreSQL, p99 target at most 5 ms.
#
# The decisions (and their admission_decision_images rows) are COPYed into a database of their
# own, provenant_bench_<pid>, migrated to head first so the indexes are the real ones. Image
# popularity is skewed (a few digests run everywhere, most run rarely), since the hot digests
# are the ones a by-digest query must not scan. Latency is measured twice: the query function
# on one warm session (what the database and ORM cost), and GET /v1/decisions over HTTP against
# a real `provenant serve` process (what a client sees, one request at a time).
# ---------------------------------------------------------------------------------------------

DECISION_TARGET_MS = 5.0
DIGEST_POOL = 20_000
QUERY_SAMPLES = 2000


def _uuid7(millis: int, rng: random.Random) -> str:
    value = (
        (millis & (2**48 - 1)) << 80 | 0x7 << 76 | rng.getrandbits(12) << 64
        | 0b10 << 62 | rng.getrandbits(62)
    )  # fmt: skip
    return str(uuid.UUID(int=value))


def _digest(i: int) -> str:
    return "sha256:" + hashlib.sha256(f"image-{i}".encode()).hexdigest()


def _popular(rng: random.Random) -> int:
    """A digest index, log-uniform: index 0 is about 7% of all images, most are rare."""
    return int(DIGEST_POOL ** rng.random()) - 1


def _generated(
    count: int, end_ms: int
) -> Iterator[tuple[tuple[object, ...], list[tuple[object, ...]]]]:
    """(decision row, its image index rows), the same every call: seeding makes two passes
    (one COPY per table) instead of holding a million rows in memory."""
    rng = random.Random(6)
    step_ms = max(1, 30 * 86_400_000 // count)  # a month of decisions, oldest first
    for n in range(count):
        millis = end_ms - (count - n) * step_ms
        at = datetime.fromtimestamp(millis / 1000, UTC)
        decision_id = _uuid7(millis, rng)
        allowed = rng.random() > 0.1
        images, index_rows = [], []
        for _ in range(rng.choice((1, 1, 2, 3))):
            index = _popular(rng)
            digest, repository = _digest(index), f"ghcr.io/acme/svc{index % 500}"
            image = f"{repository}@{digest}"
            images.append({"image": image, "digest": digest, "reference": image,
                           "containers": ["containers/app"], "allowed": allowed})  # fmt: skip
            index_rows.append(
                (decision_id, at, image, repository, digest, allowed, " acme-release ")
            )
        decision = (
            decision_id, at, str(uuid.UUID(int=rng.getrandbits(128))), f"team-{n % 200}",
            "apps/v1/Deployment", f"svc-{n % 5000}", None, "CREATE",
            "system:serviceaccount:kube-system:deployment-controller", "kube-apiserver",
            json.dumps(images), allowed, "allowed" if allowed else "denied",
            json.dumps([f"{i['image']}: passed" for i in images]),
            json.dumps({"evaluation": None, "warnings": [], "denial": []}),
            "ab" * 32, False, json.dumps({"uid": "x", "operation": "CREATE"}), "cd" * 32,
        )  # fmt: skip
        yield decision, index_rows


def seed_decisions(url: str, count: int) -> float:
    """COPY ``count`` decisions with 1 to 3 images each; returns seconds taken."""
    import psycopg

    columns = (
        'id, created_at, uid, namespace, kind, name, sub_resource, operation, "user", caller, '
        "images, allowed, outcome, reasons, explanation, policy_hash, dry_run, request, "
        "request_sha256"
    )
    image_columns = "decision_id, created_at, image, repository, digest, allowed, policies"
    end_ms = int(time.time() * 1000)
    start = time.perf_counter()
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        with conn.cursor() as cur:
            cur.execute("SET synchronous_commit = off")
            with cur.copy(f"COPY admission_decisions ({columns}) FROM STDIN") as copy:
                for decision, _ in _generated(count, end_ms):
                    copy.write_row(decision)
            with cur.copy(f"COPY admission_decision_images ({image_columns}) FROM STDIN") as copy:
                for _, index_rows in _generated(count, end_ms):
                    for row in index_rows:
                        copy.write_row(row)
        conn.commit()
        conn.autocommit = True
        # What autovacuum would do soon after a bulk load: statistics and the visibility map
        # (index-only scans of the digest index depend on the latter).
        conn.execute("VACUUM ANALYZE admission_decisions")
        conn.execute("VACUUM ANALYZE admission_decision_images")
    return time.perf_counter() - start


def _percentiles(timings: list[float]) -> tuple[float, float]:
    timings = sorted(timings)
    return statistics.median(timings), timings[max(0, int(len(timings) * 0.99) - 1)]


def _sample_digests(rng: random.Random) -> list[str]:
    """Mostly the popular digests (what people ask about), some rare ones."""
    hot = [_digest(_popular(rng)) for _ in range(QUERY_SAMPLES // 2)]
    rare = [_digest(rng.randrange(DIGEST_POOL)) for _ in range(QUERY_SAMPLES // 2)]
    mixed = hot + rare
    rng.shuffle(mixed)
    return mixed


def query_function_latency(url: str, digests: list[str], limit: int) -> tuple[float, float]:
    from app.audit.queries import DecisionFilter, decision_summary, find_decisions

    db = Database(url, pool_size=1)
    timings = []
    try:
        with db.sessions() as session:
            for digest in digests[:50]:  # warm the connection and the plan cache
                find_decisions(session, DecisionFilter(digest=digest), after=None, limit=limit)
            for digest in digests:
                t0 = time.perf_counter()
                rows = find_decisions(
                    session, DecisionFilter(digest=digest), after=None, limit=limit
                )
                [decision_summary(r) for r in rows]
                timings.append((time.perf_counter() - t0) * 1000)
                session.rollback()  # one short transaction per request, as the router does
    finally:
        db.dispose()
    return _percentiles(timings)


def http_latency(url: str, digests: list[str], limits: list[int]) -> list[tuple[float, float]]:
    import httpx

    from app.auth.service import create_token

    db = Database(url, pool_size=1)
    with db.session() as session:
        token = create_token(session, "bench-auditor", ["read"])
    db.dispose()
    with tempfile.TemporaryDirectory() as tmp:
        policy_dir = Path(tmp) / "policies"
        policy_dir.mkdir()
        port = _free_port()
        env = {
            **os.environ,
            "PROVENANT_DATABASE_URL": url,
            "PROVENANT_POLICY_DIR": str(policy_dir),
            "PROVENANT_AUDIT_KEY_FILE": str(Path(tmp) / "audit-key.pem"),
            "PROVENANT_LOG_LEVEL": "warning",
        }
        log_path = Path(tmp) / "server.log"
        with log_path.open("wb") as log:
            server = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1",
                 "--port", str(port)],
                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_ready(base, server, log_path)
            headers = {"Authorization": f"Bearer {token}"}
            results = []
            with httpx.Client(base_url=base, headers=headers, timeout=10) as client:
                for digest in digests[:50]:
                    client.get("/v1/decisions", params={"digest": digest}).raise_for_status()
                for limit in limits:
                    timings = []
                    for digest in digests:
                        params = {"digest": digest, "limit": limit}
                        t0 = time.perf_counter()
                        response = client.get("/v1/decisions", params=params)
                        response.raise_for_status()
                        response.json()
                        timings.append((time.perf_counter() - t0) * 1000)
                    results.append(_percentiles(timings))
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    return results


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(base: str, server: subprocess.Popen[bytes], log_path: Path) -> None:
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"server exited:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).is_success:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server did not start:\n{log_path.read_text()[-3000:]}")


def decision_queries(pg_url: str, count: int = 1_000_000) -> bool:
    """Seed ``count`` decisions into provenant_bench_<pid> and time by-digest queries; True
    when the HTTP p99 meets the target."""
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    name = f"provenant_bench_{os.getpid()}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = pg_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        upgrade(url)
        seconds = seed_decisions(url, count)
        print(
            f"decisions  seeded {count} decisions (+ image index rows) in {seconds:.1f} s "
            f"({count / seconds:.0f}/s)"
        )
        digests = _sample_digests(random.Random(7))
        limits = [PAGE, 100]
        functions = [query_function_latency(url, digests, limit) for limit in limits]
        https = http_latency(url, digests, limits)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    # The target is judged on the API's default page (what an auditor's client gets).
    ok = https[0][1] <= DECISION_TARGET_MS
    for limit, (fn_p50, fn_p99), (http_p50, http_p99) in zip(limits, functions, https, strict=True):
        verdict = "PASS" if http_p99 <= DECISION_TARGET_MS else "FAIL"
        print(
            f"{'':10} by digest, {limit} per page{' (default)' if limit == PAGE else ''}, "
            f"{len(digests)} queries: query function p50 {fn_p50:.2f} ms p99 {fn_p99:.2f} ms | "
            f"HTTP p50 {http_p50:.2f} ms p99 {http_p99:.2f} ms | target p99 "
            f"{DECISION_TARGET_MS:.0f} ms: {verdict}"
        )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--events", type=int, default=3000, help="events per run")
    parser.add_argument("--threads", type=int, default=8, help="concurrent appenders")
    parser.add_argument(
        "--pg-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/test",
        help="an existing database on the server to create the bench database on",
    )
    parser.add_argument("--skip-pg", action="store_true", help="SQLite only")
    parser.add_argument(
        "--decisions", type=int, default=1_000_000, help="decisions seeded for the query bench"
    )
    parser.add_argument(
        "--decisions-only", action="store_true", help="only the decision query benchmark"
    )
    args = parser.parse_args()

    results = []
    if not args.decisions_only:
        with sqlite_database() as url:
            results.append(run("sqlite", url, args.events, args.threads))
        if not args.skip_pg:
            with postgres_database(args.pg_url) as url:
                results.append(run("postgresql", url, args.events, args.threads))
    if not args.skip_pg:
        results.append(decision_queries(args.pg_url, args.decisions))
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
