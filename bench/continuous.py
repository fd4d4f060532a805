"""Continuous validation at cluster scale: 10,000 running Pods of 300 distinct images.

Builds the watcher's inventory from synthetic Pod objects (what the apiserver's list returns,
owner references included), with real, verified attestations for every image in the database,
then measures, in this process:
  - memory: the inventory's share of the process (RSS before and after it is built);
  - the first full evaluation (every finding new: inserts and audit events);
  - policy reload to every finding updated, with a stricter policy that turns all of them
    (goal: under 10 s);
  - revocation to its findings and notifications delivered to a real receiver on 127.0.0.1
    (goal: under 2 s): the revocation is seen the way another process's would be, through the
    attestation index version;
  - steady state: the evaluation loop's CPU over 10 s with nothing changing (goal: near zero).

    .venv/bin/python bench/continuous.py [--pods 10000] [--images 300] [--database-url URL]

SQLite in a temporary directory by default; PostgreSQL with --database-url (a scratch database:
its tables are migrated and written).
"""

from __future__ import annotations

import argparse
import gc
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from app.attestations.service import ingest, revoke  # noqa: E402
from app.continuous.findings import FindingStore  # noqa: E402
from app.continuous.inventory import Inventory, Workload, running_pod  # noqa: E402
from app.continuous.notify import Endpoint, Notifier  # noqa: E402
from app.continuous.runner import Evaluator, Options, SystemClock  # noqa: E402
from app.db import Database  # noqa: E402
from app.migrate import upgrade  # noqa: E402
from app.policy.store import PolicyStore  # noqa: E402
from tests.admission.conftest import POLICIES, attestation, write_policy_dir  # noqa: E402
from tests.continuous.helpers import Receiver, image, pod  # noqa: E402
from tests.sigstore_stack import SigstoreTestStack  # noqa: E402

STRICTER = POLICIES.replace(
    "      predicateType: https://slsa.dev/provenance/v1\n",
    "      predicateType: https://slsa.dev/provenance/v1\n"
    "      conditions:\n"
    "        - expression: 'predicate.buildDefinition.externalParameters.workflow.ref == \"x\"'\n",
    1,
)


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def resolve(namespace: str, kind: str, name: str) -> Workload:
    return (
        Workload("Deployment", name.rsplit("-", 1)[0])
        if kind == "ReplicaSet"
        else Workload(kind, name)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--pods-per-workload", type=int, default=5)
    parser.add_argument("--database-url")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="provenant-bench-continuous-"))
    url = args.database_url or f"sqlite:///{work / 'provenant.db'}"
    upgrade(url)
    db = Database(url, pool_size=4)
    stack = SigstoreTestStack.get()
    policy_dir = write_policy_dir(work / "policies", stack)
    policies = PolicyStore(policy_dir)
    policy_set = policies.reload()
    assert policy_set is not None, policies.last_error

    started = time.perf_counter()
    ids = []
    for i in range(args.images):
        outcome = ingest(
            db, policy_set.trust, attestation(stack, image(f"bench-{i}")), uploader="bench"
        )
        assert outcome.attestation is not None, outcome.error
        ids.append(outcome.attestation.id)
    print(
        f"setup: {args.images} attestations verified and stored in "
        f"{time.perf_counter() - started:.1f} s"
    )

    # Workloads of pods_per_workload Pods each, spread over 50 namespaces; image by workload.
    objects = []
    for n in range(args.pods):
        workload = n // args.pods_per_workload
        rs = f"app{workload}-5d8f"
        objects.append(
            pod(
                f"{rs}-{n}",
                image(f"bench-{workload % args.images}"),
                namespace=f"team-{workload % 50}",
                owner=("ReplicaSet", rs),
                uid=f"uid-{n}",
                image_id=f"docker-pullable://{image(f'bench-{workload % args.images}')}",
            )
        )
    gc.collect()
    before = rss_mb()
    inventory = Inventory()
    started = time.perf_counter()
    for obj in objects:
        running = running_pod(obj, resolve)
        assert running is not None
        inventory.put(running)
    build = time.perf_counter() - started
    del objects
    gc.collect()
    after = rss_mb()
    keys = len(inventory.counts())
    print(
        f"inventory: {len(inventory)} pods, {keys} findings keys, {args.images} images: built in "
        f"{build:.2f} s; process RSS {after:.0f} MB ({after - before:+.0f} MB for the inventory, "
        "Pod objects freed)"
    )

    with Receiver() as receiver:
        store = FindingStore(db, "bench")
        store.load()
        synced = threading.Event()
        synced.set()
        notifier = Notifier(
            db, [Endpoint(name="bench", url=receiver.url, secret="bench-secret-0123456789")]
        )
        evaluator = Evaluator(
            db,
            policies,
            inventory,
            store,
            clock=SystemClock(),
            options=Options(cluster="bench"),
            synced=synced,
        )

        started = time.perf_counter()
        evaluator.step()
        print(
            f"first full evaluation: {keys} findings written in "
            f"{time.perf_counter() - started:.2f} s"
        )

        (policy_dir / "policies.yaml").write_text(STRICTER)
        started = time.perf_counter()
        policies.reload()
        transitions = evaluator.step()
        print(
            f"policy reload -> every finding updated: {transitions} transitions in "
            f"{time.perf_counter() - started:.2f} s (goal < 10 s)"
        )
        (policy_dir / "policies.yaml").write_text(POLICIES)
        policies.reload()
        evaluator.step()  # back to compliant

        # Deliveries only from here on: the revocation's.
        store.endpoints = notifier.endpoints
        started = time.perf_counter()
        revoke(db, ids[0], "bench", "bench")
        transitions = evaluator.step()
        judged = time.perf_counter() - started
        while len(receiver.received) < transitions:
            notifier.deliver_due()
        print(
            f"revocation -> findings: {transitions} transitions in {judged:.3f} s; -> "
            f"{len(receiver.received)} notifications delivered in "
            f"{time.perf_counter() - started:.3f} s (goal < 2 s)"
        )
        notifier.close()

        stop = threading.Event()
        thread = threading.Thread(target=evaluator.run, args=(stop,), daemon=True)
        cpu = time.process_time()
        wall = time.perf_counter()
        thread.start()
        stop.wait(10)
        stop.set()
        thread.join()
        used = time.process_time() - cpu
        elapsed = time.perf_counter() - wall
        print(
            f"steady state: {used * 1000:.0f} ms CPU in {elapsed:.1f} s "
            f"({100 * used / elapsed:.2f} % of a core; one index-version read per second)"
        )
    db.dispose()


if __name__ == "__main__":
    main()
