"""PostgreSQL goes away under load and comes back (issue 11): the real server process, its own
database, every backend of that database terminated again and again (pg_terminate_backend),
then connections refused for a while (ALLOW_CONNECTIONS false). Throughout, no 5xx but 503
(with Retry-After), no admission answered 500 or admitted without its record, and the service
recovers by itself. Only this test's database is touched: other sessions share the server."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, select, text

from app.admission.models import Decision
from app.db import Database
from app.migrate import upgrade
from tests.admission.conftest import attestation, write_policy_dir
from tests.admission.helpers import APP, digest_of, review, with_images
from tests.conftest import PG_ADMIN_URL, _pg_unavailable
from tests.helpers import TokenFactory
from tests.server import ServerProcess
from tests.sigstore_stack import SigstoreTestStack

pytestmark = pytest.mark.e2e

CLIENTS = 4


@pytest.fixture
def outage_db() -> Iterator[tuple[str, str]]:
    """(name, url) of a database of this test's own."""
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"provenant_outage_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        _pg_unavailable(f"{type(exc).__name__}: {exc}".splitlines()[0])
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        upgrade(url)
        yield name, url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class Outage:
    """Cuts off the backends of one database (and only that one)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")

    def terminate(self) -> int:
        with self.admin.connect() as conn:
            return len(
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": self.name},
                ).all()
            )

    def allow_connections(self, allowed: bool) -> None:
        with self.admin.connect() as conn:
            conn.execute(
                text(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS {str(allowed).lower()}')
            )


class Load:
    """Clients sending a mix of queries, uploads and admissions until stopped."""

    def __init__(self, server: ServerProcess, stack: SigstoreTestStack, tokens: dict) -> None:
        self.server, self.stack, self.tokens = server, stack, tokens
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.results: list[tuple[float, str, int, dict]] = []  # (time, kind, status, info)
        self.threads = [
            threading.Thread(target=self.run, args=(n,), daemon=True) for n in range(CLIENTS)
        ]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(60)

    def run(self, client_number: int) -> None:
        with self.server.client() as client:
            n = 0
            while not self.stop.is_set():
                n += 1
                kind = ("query", "admit", "upload", "admit-new")[(n + client_number) % 4]
                try:
                    status, info = self.send(client, kind, f"{client_number}-{n}")
                except httpx.TransportError as exc:
                    status, info = -1, {"error": repr(exc)}
                with self.lock:
                    self.results.append((time.monotonic(), kind, status, info))

    def send(self, client: httpx.Client, kind: str, tag: str) -> tuple[int, dict]:
        if kind == "query":
            response = client.get(
                "/v1/attestations",
                params={"subject_digest": f"sha256:{digest_of('app')}"},
                headers=self.tokens["read"],
            )
        elif kind == "upload":
            image = f"ghcr.io/acme/up{tag}@sha256:{digest_of(tag)}"
            response = client.post(
                "/v1/attestations",
                content=attestation(self.stack, image),
                headers=self.tokens["upload"],
            )
        else:
            image = APP if kind == "admit" else f"ghcr.io/acme/new{tag}@sha256:{digest_of(tag)}"
            response = client.post(
                "/k8s/validate",
                json=review(with_images("pod", [image])),
                headers=self.tokens["admission"],
            )
        info: dict = {"retry_after": response.headers.get("retry-after")}
        if response.status_code == 200 and kind.startswith("admit"):
            answer = response.json()["response"]
            info["allowed"] = answer["allowed"]
            info["decision"] = answer["auditAnnotations"].get("decision-id")
        elif response.status_code >= 500:
            info["body"] = response.text[:300]
        return response.status_code, info


def test_terminated_and_refused_connections_give_503_or_refusals_and_the_service_recovers(
    outage_db: tuple[str, str], tmp_path: Path, stack: SigstoreTestStack
) -> None:
    name, url = outage_db
    policy_dir = write_policy_dir(tmp_path / "policies", stack)
    db = Database(url, pool_size=1)
    factory = TokenFactory(db)
    tokens = {scope: factory(scope) for scope in ("read", "upload", "admission")}
    outage = Outage(name)
    with ServerProcess(url, policy_dir, tmp_path) as server:
        with server.client() as client:
            uploaded = client.post(
                "/v1/attestations", content=attestation(stack, APP), headers=tokens["upload"]
            )
            assert uploaded.status_code == 201, uploaded.text
        with Load(server, stack, tokens) as load:
            time.sleep(1.5)
            terminated = 0
            for _ in range(10):  # connections dropped mid-run, again and again
                terminated += outage.terminate()
                time.sleep(0.3)
            outage.allow_connections(False)  # then the database refuses connections
            terminated += outage.terminate()
            time.sleep(2.0)
            outage.allow_connections(True)
            time.sleep(4.0)  # recovering
            recovered_from = time.monotonic()
            time.sleep(2.0)
        log = server.log()
    outage.admin.dispose()

    results = load.results
    statuses = Counter(status for _, _, status, _ in results)
    print("terminated", terminated, "statuses", dict(statuses))
    assert terminated > 0
    assert statuses[-1] == 0, [r for r in results if r[2] == -1][:3]
    other_5xx = [r for r in results if r[2] >= 500 and r[2] != 503]
    assert other_5xx == [], (other_5xx[:5], log[-3000:])
    assert all(r[3]["retry_after"] == "2" for r in results if r[2] == 503)
    # The outage was felt: requests were refused, or admissions not recorded.
    refused = [r for r in results if r[1].startswith("admit") and r[3].get("decision") is None]
    assert statuses[503] + len(refused) > 0
    # Nothing admitted without its record.
    admitted = {r[3]["decision"] for r in results if r[3].get("allowed")}
    assert admitted
    with db.session() as session:
        stored = set(session.scalars(select(Decision.id).where(Decision.id.in_(admitted))))
    assert stored == admitted
    # Recovered by itself: after the database came back, everything succeeded.
    late = [r for r in results if r[0] >= recovered_from]
    assert late and all(r[2] in (200, 201) for r in late), [r for r in late if r[2] >= 300][:5]
    assert all(r[3].get("decision") for r in late if r[1].startswith("admit"))
    db.dispose()
