"""Storage per admission decision on PostgreSQL: N decisions (default 100 000) over 20 Pod
templates, written by the recorder's own code, then ``pg_total_relation_size`` (table, its
indexes and TOAST) of every table they touch, per decision.

1. Seeds 400 attestations as bench/admission.py does (three images in four pass the policy).
2. 20 Pod templates of 3 containers (bench/admission.py's Pod): 16 allowed, 4 with one
   denied image. Decision i is a replica of template i % 20, as a ReplicaSet's Pods are: its
   own review uid, Pod name and Pod uid, the rest the same.
3. Each decision is judged by ``admission.service.prepare`` (the webhook's own code, through
   its decision cache), made into rows by ``record.prepare`` and written by
   ``record.write_prepared`` in batches of 25, with its audit event: what the recorder child
   does, without HTTP.
4. Prints bytes per decision for the decision tables (``admission_*``) and, apart, the audit
   log's tables, after ``VACUUM`` (no dead rows are left anyway: nothing is updated).

The figure does not depend on the machine's load (only the run time does).

    .venv/bin/python bench/decision_storage.py [--decisions 100000] [--templates 20]

PostgreSQL: 127.0.0.1:5432, user postgres (or PROVENANT_BENCH_PG_URL, an admin URL); the
bench creates and drops its own database ``provenant_bench_<pid>``.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sqlalchemy import text  # noqa: E402

from app.admission import record as records  # noqa: E402
from app.admission.router import parse_review  # noqa: E402
from app.admission.service import Admission, extract_images, prepare  # noqa: E402
from app.main import create_app  # noqa: E402
from app.migrate import upgrade  # noqa: E402
from app.settings import Settings  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_admission", REPO / "bench" / "admission.py")
assert _spec is not None and _spec.loader is not None
base = importlib.util.module_from_spec(_spec)
sys.modules["bench_admission"] = base  # its dataclasses look their module up
_spec.loader.exec_module(base)

BATCH = 25  # about what the recorder child commits at once under load


def templates(images: Any, count: int) -> list[dict[str, Any]]:
    good, bad = list(images.good), list(images.bad)
    reviews = []
    for number in range(count):
        chosen = [good.pop(), good.pop(), good.pop()]
        if number % 5 == 4:  # one template in five has a denied image
            chosen[1] = bad.pop()
        reviews.append(base.admission_review(number, chosen))
    return reviews


def replica(template: dict[str, Any], index: int) -> bytes:
    review = copy.deepcopy(template)
    request = review["request"]
    name = f"{request['name']}-5d4f8c7b9-{index:05x}"
    request["uid"] = str(uuid.uuid4())
    request["name"] = name
    request["object"]["metadata"]["name"] = name
    request["object"]["metadata"]["uid"] = str(uuid.uuid4())
    return json.dumps(review, separators=(",", ":")).encode()


def sizes(url: str) -> dict[str, int]:
    engine = base.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("VACUUM ANALYZE"))
        rows = conn.execute(
            text(
                "SELECT relname, pg_total_relation_size(c.oid) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' AND c.relkind = 'r' "
                "AND (relname LIKE 'admission%' OR relname LIKE 'audit%')"
            )
        ).all()
        indexes = conn.execute(
            text(
                "SELECT tablename, count(*) FROM pg_indexes WHERE schemaname = 'public' "
                "GROUP BY tablename"
            )
        ).all()
    engine.dispose()
    print("  indexes per table: " + ", ".join(f"{t} {n}" for t, n in sorted(indexes)))
    return {name: int(size) for name, size in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=100_000)
    parser.add_argument("--templates", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, base.database("postgresql", Path(tmp)) as url:
        workdir = Path(tmp)
        upgrade(url)
        images = base.seed(url, 400)
        policy_dir = workdir / "policies"
        policy_dir.mkdir()
        (policy_dir / "policies.yaml").write_text(base.POLICIES)
        app = create_app(
            Settings(
                database_url=url,
                policy_dir=policy_dir,
                audit_key_file=workdir / "audit-key.pem",
                admission_recorder="thread",
            )
        )
        state = app.state
        if state.policies.reload() is None:
            raise SystemExit(f"the bench policies did not load: {state.policies.last_error}")
        admission = Admission(db=state.db, policies=state.policies, cache=state.admission_cache)
        pods = templates(images, args.templates)
        started, cpu_started = time.perf_counter(), time.process_time()
        write_cpu = 0.0
        outcomes: dict[str, int] = {}
        batch: list[records.PreparedDecision] = []
        for index in range(args.decisions):
            body = replica(pods[index % len(pods)], index)
            review = parse_review(body)
            decided = prepare(admission, review, body, extract_images(review.request), "bench")
            outcome = decided.record.verdict.outcome
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            batch.append(records.prepare(decided.record))
            if len(batch) == BATCH or index == args.decisions - 1:
                before = time.process_time()
                records.write_prepared(state.db, batch)
                write_cpu += time.process_time() - before
                batch.clear()
            if index % 20_000 == 19_999:
                print(f"  {index + 1} decisions, {time.perf_counter() - started:.0f} s", flush=True)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        state.db.dispose()
        measured = sizes(url)
    n = args.decisions
    print(f"\n{n} decisions over {args.templates} Pod templates ({outcomes}), "
          f"{elapsed:.0f} s wall, {cpu / n * 1e6:.0f} us CPU per decision in this process "
          f"(write_prepared {write_cpu / n * 1e6:.0f} us, client side only)")  # fmt: skip
    decision_total = audit_total = 0
    for name, size in sorted(measured.items()):
        print(f"  {name:34s} {size / 1e6:9.1f} MB  {size / n:8.0f} B/decision")
        if name.startswith("admission"):
            decision_total += size
        else:
            audit_total += size
    print(f"  {'decision tables':34s} {decision_total / 1e6:9.1f} MB  "
          f"{decision_total / n:8.0f} B/decision (target <= 1024)")  # fmt: skip
    print(f"  {'audit log tables':34s} {audit_total / 1e6:9.1f} MB  {audit_total / n:8.0f} "
          f"B/decision")  # fmt: skip
    print(f"  {'together':34s} {(decision_total + audit_total) / 1e6:9.1f} MB  "
          f"{(decision_total + audit_total) / n:8.0f} B/decision")  # fmt: skip


if __name__ == "__main__":
    main()
