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

    .venv/bin/python bench/audit.py [-n 3000] [--threads 8] [--pg-url URL] [--skip-pg]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from sqlalchemy import create_engine, event, text  # noqa: E402

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
# 1M decisions in PostgreSQL, p99 target at most 5 ms. It needs the admission webhook's
# decisions table, which does not exist yet; plug it in here.
# ---------------------------------------------------------------------------------------------


def decision_queries(pg_url: str) -> bool | None:
    """Return True/False against the p99 target, or None while not implemented."""
    return None


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
    args = parser.parse_args()

    results = []
    with sqlite_database() as url:
        results.append(run("sqlite", url, args.events, args.threads))
    if not args.skip_pg:
        with postgres_database(args.pg_url) as url:
            results.append(run("postgresql", url, args.events, args.threads))
            decisions = decision_queries(url)
            print(
                "decisions  by-digest query benchmark: "
                + (
                    "not implemented yet (needs the admission decisions table)"
                    if decisions is None
                    else ("PASS" if decisions else "FAIL")
                )
            )
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
