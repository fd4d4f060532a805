"""GET /v1/decisions: filters, stable pagination, errors; decisions made through /k8s/validate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.admission.conftest import upload, write_policy_dir
from tests.admission.helpers import APP, admit, digest_of, review, with_images
from tests.helpers import TokenFactory
from tests.sigstore_stack import SigstoreTestStack

UNATTESTED = f"ghcr.io/acme/unattested@sha256:{digest_of('unattested')}"
CANARY = f"ghcr.io/canary/app@sha256:{digest_of('canary')}"


@pytest.fixture
def policy_dir(tmp_path: Path, stack: SigstoreTestStack) -> Path:
    return write_policy_dir(tmp_path / "policies", stack)


@pytest.fixture
def recorded(client: TestClient, stack: SigstoreTestStack, tokens: TokenFactory) -> dict[str, str]:
    """Five decisions, oldest first: allowed, denied, warn, dry run, excluded."""
    upload(client, stack, tokens("upload"), APP)
    hook = tokens("admission")
    return {
        "allowed": admit(client, hook, review(with_images("deployment", [APP]))),
        "denied": admit(
            client, hook, review(with_images("pod", [APP, UNATTESTED]), namespace="prod-a")
        ),
        "warn": admit(client, hook, review(with_images("pod", [CANARY]))),
        "dry_run": admit(
            client,
            hook,
            review(with_images("deployment", [APP]), namespace="staging", dry_run=True),
        ),
        "excluded": admit(
            client, hook, review(with_images("pod", [UNATTESTED]), namespace="kube-system")
        ),
    }


def ids(client: TestClient, headers: dict[str, str], **params: Any) -> list[str]:
    response = client.get("/v1/decisions", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def test_filters(client: TestClient, recorded: dict[str, str], tokens: TokenFactory) -> None:
    reader = tokens("read")
    r = recorded
    newest_first = [r["excluded"], r["dry_run"], r["warn"], r["denied"], r["allowed"]]
    assert ids(client, reader) == newest_first
    app_digest = "sha256:" + digest_of("app")
    assert ids(client, reader, digest=app_digest) == [r["dry_run"], r["denied"], r["allowed"]]
    # An excluded namespace is never evaluated, yet its digest is indexed.
    unattested = "sha256:" + digest_of("unattested")
    assert ids(client, reader, digest=unattested) == [r["excluded"], r["denied"]]
    assert ids(client, reader, digest=app_digest.upper().replace("SHA256", "sha256")) == ids(
        client, reader, digest=app_digest
    )
    assert ids(client, reader, digest=app_digest, allowed="true") == [r["dry_run"], r["allowed"]]
    assert ids(client, reader, allowed="false") == [r["denied"]]
    assert ids(client, reader, namespace="prod-a") == [r["denied"]]
    assert ids(client, reader, kind="Deployment") == [r["dry_run"], r["allowed"]]
    assert ids(client, reader, kind="apps/v1/Deployment", namespace="default") == [r["allowed"]]
    assert ids(client, reader, kind="Pod", name="app") == [r["excluded"], r["warn"], r["denied"]]
    assert ids(client, reader, policy="canary") == [r["warn"]]
    assert ids(client, reader, policy="acme-release") == [r["dry_run"], r["denied"], r["allowed"]]
    assert ids(client, reader, policy="acme") == []  # whole names only
    assert ids(client, reader, digest=app_digest, policy="canary") == []
    assert ids(client, reader, image="ghcr.io/acme/app") == [
        r["dry_run"],
        r["denied"],
        r["allowed"],
    ]
    assert ids(client, reader, image=CANARY) == [r["warn"]]
    assert ids(client, reader, image="ghcr.io/acme/app:v1") == []


def test_time_window_and_summary(
    client: TestClient, recorded: dict[str, str], tokens: TokenFactory
) -> None:
    reader = tokens("read")
    items = client.get("/v1/decisions", headers=reader).json()["items"]
    by_id = {item["id"]: item for item in items}
    warn = by_id[recorded["warn"]]
    assert warn["outcome"] == "warn" and warn["allowed"] is True
    assert warn["images"][0]["image"] == CANARY
    assert "explanation" not in warn  # GET /v1/decisions/{id} has it
    assert by_id[recorded["dry_run"]]["dry_run"] is True
    at = warn["time"]
    assert ids(client, reader, since=at) == [recorded["excluded"], recorded["dry_run"], warn["id"]]
    assert ids(client, reader, until=at) == [recorded["denied"], recorded["allowed"]]
    assert ids(client, reader, since=by_id[recorded["denied"]]["time"], until=at) == [
        recorded["denied"]
    ]
    full = client.get(f"/v1/decisions/{warn['id']}", headers=reader).json()
    assert full["explanation"]["evaluation"]["images"][0]["policies"][0]["name"] == "canary"


def test_pages_are_stable_while_decisions_are_recorded(
    client: TestClient, recorded: dict[str, str], tokens: TokenFactory
) -> None:
    reader = tokens("read")
    before = ids(client, reader)
    first = client.get("/v1/decisions", params={"limit": 2}, headers=reader).json()
    assert [i["id"] for i in first["items"]] == before[:2]
    # Newer decisions sort before the first page: the pages after it do not move.
    admit(client, tokens("admission"), review(with_images("pod", [APP])))
    seen = [i["id"] for i in first["items"]]
    cursor = first["next_cursor"]
    while cursor:
        page = client.get(
            "/v1/decisions", params={"limit": 2, "cursor": cursor}, headers=reader
        ).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
    assert seen == before
    digest_pages = client.get(
        "/v1/decisions", params={"digest": "sha256:" + digest_of("app"), "limit": 1}, headers=reader
    ).json()
    assert len(digest_pages["items"]) == 1 and digest_pages["next_cursor"]


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"digest": "sha256:xyz"}, "digest"),
        ({"digest": "app"}, "digest"),
        ({"cursor": "bm90IGEgY3Vyc29y"}, "cursor"),
        ({"cursor": "%%%"}, "cursor"),
        ({"policy": "Not_A_Name"}, "policy"),
        ({"kind": "Deploy%"}, "kind"),
        ({"image": "ghcr.io/UPPER/app::x"}, "image"),
        ({"since": "2030-01-02T00:00:00Z", "until": "2030-01-01T00:00:00Z"}, "since"),
    ],
)
def test_bad_parameters_are_400(
    client: TestClient, tokens: TokenFactory, params: dict[str, str], parameter: str
) -> None:
    response = client.get("/v1/decisions", params=params, headers=tokens("read"))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_parameter"
    assert error["details"]["parameter"] == parameter


def test_malformed_values_and_scopes(client: TestClient, tokens: TokenFactory) -> None:
    for params in ({"allowed": "maybe"}, {"since": "yesterday"}, {"limit": 0}):
        response = client.get("/v1/decisions", params=params, headers=tokens("read"))
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "invalid_request"
    assert client.get("/v1/decisions").status_code == 401
    assert client.get("/v1/decisions", headers=tokens("upload")).status_code == 403
    assert client.get("/v1/decisions", headers=tokens("read")).json() == {
        "items": [],
        "next_cursor": None,
    }
