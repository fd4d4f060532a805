"""POST /v1/policies/simulate: replay recorded admissions against proposed policies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.admission.models import Decision
from app.audit.models import AuditEvent
from app.db import Database
from tests.admission.conftest import _policy, upload, write_policy_dir
from tests.admission.helpers import APP, admit, digest_of, review, with_images
from tests.helpers import TokenFactory
from tests.sigstore_stack import SigstoreTestStack

UNATTESTED = f"ghcr.io/acme/unattested@sha256:{digest_of('unattested')}"
CANARY = f"ghcr.io/canary/app@sha256:{digest_of('canary')}"
CONFIG = """\
apiVersion: provenant.dev/v1alpha1
kind: PolicyConfig
spec:
  noMatch: {no_match}
  tagOnly: deny
  excludedNamespaces: [{excluded}]
"""
# Canary enforced and kube-system no longer excluded.
STRICTER = "---\n".join(
    [
        _policy("acme-release", "ghcr.io/acme/**"),
        _policy("canary", "ghcr.io/canary/**"),
        CONFIG.format(no_match="deny", excluded=""),
    ]
)
# No policy at all, and noMatch allows: everything is admitted.
OPEN = CONFIG.format(no_match="allow", excluded="kube-system")


@pytest.fixture
def policy_dir(tmp_path: Path, stack: SigstoreTestStack) -> Path:
    return write_policy_dir(tmp_path / "policies", stack)


@pytest.fixture
def recorded(client: TestClient, stack: SigstoreTestStack, tokens: TokenFactory) -> dict[str, str]:
    upload(client, stack, tokens("upload"), APP)
    hook = tokens("admission")
    pod = with_images("pod", [UNATTESTED])
    return {
        "allowed": admit(client, hook, review(with_images("deployment", [APP]))),
        "denied": admit(client, hook, review(pod, namespace="prod-a")),
        "warn": admit(client, hook, review(with_images("pod", [CANARY]), dry_run=True)),
        "excluded": admit(client, hook, review(pod, namespace="kube-system")),
        "skipped": admit(client, hook, review(None, operation="DELETE", old=pod)),
    }


def simulate(client: TestClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = client.post("/v1/policies/simulate", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


def decision_count(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(Decision)) or 0)


def test_stricter_policy_denies_what_was_allowed(
    client: TestClient, recorded: dict[str, str], tokens: TokenFactory, db: Database
) -> None:
    before = decision_count(db)
    result = simulate(client, tokens("admin", name="security"), documents=STRICTER)
    assert (result["replayed"], result["not_replayed"]) == (4, 1)  # the DELETE cannot change
    assert (result["allowed_to_denied"], result["denied_to_allowed"]) == (2, 0)
    assert (result["changed"], result["unchanged"]) == (2, 2)
    examples = {e["decision"]: e for e in result["examples"]["allowed_to_denied"]}
    assert set(examples) == {recorded["warn"], recorded["excluded"]}
    canary = examples[recorded["warn"]]
    assert canary["recorded"] == {"allowed": True, "outcome": "warn"}
    assert canary["simulated"]["outcome"] == "denied" and canary["dry_run"] is True
    assert canary["images"] == [CANARY]
    assert any(CANARY in reason for reason in canary["simulated"]["reasons"])
    assert examples[recorded["excluded"]]["recorded"]["outcome"] == "excluded"
    assert result["policy_hash"] != result["active_policy_hash"]
    # Nothing enforced or recorded as a decision; the simulation itself is audited.
    assert decision_count(db) == before
    with db.session() as session:
        [event] = session.scalars(select(AuditEvent).where(AuditEvent.type == "policy.simulated"))
        assert event.actor == "security"
        assert event.payload["allowed_to_denied"] == 2
    listed = client.get("/v1/policies", headers=tokens("read")).json()
    assert listed["content_hash"] == result["active_policy_hash"]


def test_open_policy_admits_what_was_denied_in_files_form(
    client: TestClient, recorded: dict[str, str], tokens: TokenFactory
) -> None:
    result = simulate(client, tokens("admin"), documents={"files": {"config.yaml": OPEN}})
    assert (result["allowed_to_denied"], result["denied_to_allowed"]) == (0, 1)
    [example] = result["examples"]["denied_to_allowed"]
    assert example["decision"] == recorded["denied"]
    assert example["simulated"]["allowed"] is True
    assert result["outcome_changed"] >= 1  # the canary warning is gone: allowed either way
    assert any("no ImagePolicy" in w for w in result["warnings"])


def test_window_limits_and_truncation(
    client: TestClient, recorded: dict[str, str], tokens: TokenFactory
) -> None:
    admin = tokens("admin")
    future = datetime.now(UTC) + timedelta(hours=1)
    empty = simulate(
        client, admin, documents=STRICTER, since=future.isoformat(),
        until=(future + timedelta(hours=1)).isoformat(),
    )  # fmt: skip
    assert (empty["replayed"], empty["changed"]) == (0, 0)
    capped = simulate(client, admin, documents=STRICTER, max_decisions=2, examples=0)
    assert capped["replayed"] == 2 and capped["truncated"] is True
    assert capped["examples"] == {"allowed_to_denied": [], "denied_to_allowed": []}


def test_invalid_proposals(client: TestClient, tokens: TokenFactory) -> None:
    admin = tokens("admin")
    broken = STRICTER.replace("kind: PolicyConfig", "kind: PolicyConfig\n  bad: [unclosed")
    response = client.post("/v1/policies/simulate", json={"documents": broken}, headers=admin)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "policy_invalid"
    [problem] = error["details"]["errors"]
    assert problem["file"] == "policies.yaml" and problem["line"] is not None
    unknown_key = _policy("x", "ghcr.io/x/**").replace("keys/release.pub", "keys/missing.pub")
    response = client.post(
        "/v1/policies/simulate", json={"documents": {"files": {"x.yaml": unknown_key}}},
        headers=admin,
    )  # fmt: skip
    assert response.status_code == 422
    assert response.json()["error"]["details"]["errors"][0]["file"] == "x.yaml"
    for files in ({"../escape.yaml": OPEN}, {"keys/k.yaml": OPEN}, {"notes.txt": OPEN}):
        response = client.post(
            "/v1/policies/simulate", json={"documents": {"files": files}}, headers=admin
        )
        assert response.status_code == 400, response.text
    response = client.post(
        "/v1/policies/simulate",
        json={"documents": OPEN, "since": "2030-01-02T00:00:00Z", "until": "2030-01-01T00:00:00Z"},
        headers=admin,
    )
    assert response.status_code == 400
    response = client.post(
        "/v1/policies/simulate", json={"documents": OPEN}, headers=tokens("read")
    )
    assert response.status_code == 403
