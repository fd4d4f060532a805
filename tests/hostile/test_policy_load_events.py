"""Issue 11 item 14: every policy load (startup, SIGHUP, the API) is one audit event carrying
the policy-set hash; before, only POST /v1/policies:reload wrote one."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.audit.models import AuditEvent
from app.db import Database
from app.policy.store import PolicyLoad, PolicyStore
from tests.policy.helpers import policy, write
from tests.server import ServerProcess


def _loads(db: Database) -> list[tuple[str, str, dict[str, Any]]]:
    with db.session() as s:
        rows = s.scalars(
            select(AuditEvent).where(AuditEvent.type.like("policies.%")).order_by(AuditEvent.seq)
        ).all()
        return [(r.type, r.actor, dict(r.payload)) for r in rows]


def test_startup_and_api_loads_are_one_event_each(
    client: TestClient, db: Database, policy_dir: Path, admin: dict
) -> None:
    active = client.get("/v1/policies", headers=admin).json()["content_hash"]
    [(kind, actor, payload)] = _loads(db)
    assert (kind, actor, payload["trigger"]) == ("policies.loaded", "system:startup", "startup")
    assert payload["content_hash"] == active
    assert payload["previous_hash"] is None

    write(policy_dir, "a.yaml", policy("a"))
    response = client.post("/v1/policies:reload", headers=admin)
    assert response.status_code == 200, response.text
    new = response.json()["content_hash"]
    write(policy_dir, "b.yaml", policy("b", images='["[broken"]'))
    assert client.post("/v1/policies:reload", headers=admin).status_code == 422
    events = _loads(db)
    assert [(k, a, p["trigger"]) for k, a, p in events] == [
        ("policies.loaded", "system:startup", "startup"),
        ("policies.reloaded", "root", "api"),
        ("policies.reload_failed", "root", "api"),
    ]
    assert (events[1][2]["previous_hash"], events[1][2]["content_hash"]) == (active, new)
    assert events[2][2]["content_hash"] == new  # still enforced
    assert events[2][2]["errors"]


def test_a_load_that_cannot_be_recorded_is_not_enforced(policy_dir: Path) -> None:
    write(policy_dir, "a.yaml", policy("a"))
    store = PolicyStore(policy_dir)
    store.reload()
    before = store.active

    def refuse(_load: PolicyLoad) -> None:
        raise RuntimeError("audit log unavailable")

    store.recorders.append(refuse)
    write(policy_dir, "b.yaml", policy("b"))
    with pytest.raises(RuntimeError):
        store.reload(trigger="api", actor="root")
    assert store.active is before


@pytest.mark.e2e
@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
def test_sighup_reload_is_an_audit_event(
    db_url: str, db: Database, policy_dir: Path, tmp_path: Path
) -> None:
    server = ServerProcess(db_url, policy_dir, tmp_path).start(timeout=120)
    try:
        assert [k for k, _, _ in _loads(db)] == ["policies.loaded"]
        write(policy_dir, "a.yaml", policy("a"))
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGHUP)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(_loads(db)) < 2:
            time.sleep(0.1)
    finally:
        server.stop()
    events = _loads(db)
    assert [(k, a, p["trigger"]) for k, a, p in events] == [
        ("policies.loaded", "system:startup", "startup"),
        ("policies.reloaded", "signal:SIGHUP", "sighup"),
    ]
    assert events[1][2]["previous_hash"] == events[0][2]["content_hash"]
    assert events[1][2]["content_hash"] != events[0][2]["content_hash"]
