"""PROVENANT_REGISTRY_ALLOWED: no caller, registry redirect or token realm makes the server
connect to a host it was not allowed to reach; and POST /v1/registry/pull reads no body before
the token is checked."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from app.registry.allowlist import RegistryAllowlist
from app.registry.client import Deadline, RegistryClient
from app.registry.errors import RegistryError
from tests.conftest import make_app
from tests.helpers import TokenFactory
from tests.registry.fake import FakeRegistry
from tests.registry.tools import OCI_MANIFEST, sha256_digest

REPO = "team/app"
IMAGE_BYTES = b'{"schemaVersion": 2, "config": {}, "layers": []}'
DIGEST = sha256_digest(IMAGE_BYTES)


def _no_dns(host: str, port: int) -> list[str]:
    raise AssertionError(f"{host} was resolved: listed hosts need no lookup")


def test_entries_match_hosts_ports_and_subdomains() -> None:
    allowed = RegistryAllowlist("ghcr.io, registry.internal:5000, *.corp.example", _no_dns)

    allowed.check_registry("ghcr.io")
    allowed.check_registry("registry.internal:5000")
    allowed.check_registry("eu.corp.example")
    for refused in ("docker.io", "registry.internal:5001", "corp.example", "evilcorp.example"):
        with pytest.raises(RegistryError) as caught:
            allowed.check_registry(refused)
        assert caught.value.code == "registry_not_allowed"
        assert "PROVENANT_REGISTRY_ALLOWED" in caught.value.message


def test_public_allows_public_addresses_only_and_none_allows_nothing() -> None:
    resolved = {
        "ghcr.io": ["140.82.112.33"],
        "metadata.internal": ["169.254.169.254"],
        "db.internal": ["10.0.0.7"],
        "v6.internal": ["fd00::1"],
        "mapped.internal": ["::ffff:127.0.0.1"],
        "mixed.example": ["140.82.112.33", "127.0.0.1"],  # one private address is enough
    }
    public = RegistryAllowlist("public", lambda host, port: resolved[host])

    public.check_connection("ghcr.io", "ghcr.io", 443)
    for host in ("metadata.internal", "db.internal", "v6.internal", "mapped.internal"):
        with pytest.raises(RegistryError, match="non-public address"):
            public.check_connection(host, host, 443)
    with pytest.raises(RegistryError):
        public.check_connection("mixed.example", "mixed.example", 443)
    with pytest.raises(RegistryError):
        RegistryAllowlist("none").check_registry("ghcr.io")


def test_the_default_refuses_a_loopback_registry_before_connecting(fake: FakeRegistry) -> None:
    client = RegistryClient()  # the default: public

    with pytest.raises(RegistryError) as caught:
        client.manifest(fake.host, REPO, DIGEST, Deadline.after(5))

    assert caught.value.code == "registry_not_allowed"
    assert "PROVENANT_REGISTRY_ALLOWED" in caught.value.message
    assert fake.hits == []


def test_a_token_realm_on_an_internal_host_is_never_fetched() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(
            401, headers={"WWW-Authenticate": 'Bearer realm="https://10.1.2.3/token",service="r"'}
        )

    client = RegistryClient(transport=httpx.MockTransport(handler), allowed="registry.example")
    with pytest.raises(RegistryError) as caught:
        client.manifest("registry.example", REPO, DIGEST, Deadline.after(5))

    assert caught.value.code == "registry_not_allowed"
    assert "10.1.2.3" in caught.value.message
    assert all("10.1.2.3" not in url for url in seen) and len(seen) == 1


def test_a_redirect_to_an_internal_host_is_never_followed() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if request.url.host == "registry.example":
            return httpx.Response(307, headers={"Location": "http://169.254.169.254/latest"})
        return httpx.Response(200, content=IMAGE_BYTES, headers={"Content-Type": OCI_MANIFEST})

    client = RegistryClient(transport=httpx.MockTransport(handler), allowed="registry.example")
    with pytest.raises(RegistryError) as caught:
        client.manifest("registry.example", REPO, DIGEST, Deadline.after(5))

    assert caught.value.code == "registry_not_allowed"
    assert seen == [f"https://registry.example/v2/{REPO}/manifests/{DIGEST}"]


def test_pull_over_the_api_names_the_setting_when_a_registry_is_refused(
    fake: FakeRegistry,
    db_url: str,
    policy_dir: Path,
    tokens: TokenFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PROVENANT_REGISTRY_ALLOWED")  # the default
    with TestClient(make_app(db_url, policy_dir), raise_server_exceptions=False) as client:
        refused = client.post(
            "/v1/registry/pull",
            json={"image": f"{fake.host}/{REPO}@{DIGEST}"},
            headers=tokens("upload"),
        )

    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "registry_not_allowed"
    assert "PROVENANT_REGISTRY_ALLOWED" in refused.json()["error"]["message"]
    assert fake.hits == []


def test_pull_reads_no_body_before_the_token_is_checked(
    db_url: str, policy_dir: Path, tokens: TokenFactory
) -> None:
    with TestClient(make_app(db_url, policy_dir), raise_server_exceptions=False) as client:
        malformed = client.post("/v1/registry/pull", content=b"{not json")
        huge = client.post("/v1/registry/pull", content=b"[" * (20 * 1024 * 1024))
        too_large = client.post(
            "/v1/registry/pull", content=b" " * (20 * 1024 * 1024), headers=tokens("upload")
        )

    # Before: FastAPI parsed the declared body first and answered 400 to anyone.
    assert malformed.status_code == 401, malformed.text
    assert huge.status_code == 401, huge.text
    assert too_large.status_code == 413
    assert too_large.json()["error"]["details"]["limit"] == "PROVENANT_MAX_REQUEST_BYTES"


def test_a_refused_registry_is_refused_whatever_the_deadline(
    fake: FakeRegistry,
    db_url: str,
    policy_dir: Path,
    tokens: TokenFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Found by the full contract run: a generated timeout of a few nanoseconds gave 504 before
    # the allowlist was consulted.
    monkeypatch.setenv("PROVENANT_REGISTRY_ALLOWED", "none")
    with TestClient(make_app(db_url, policy_dir), raise_server_exceptions=False) as client:
        refused = client.post(
            "/v1/registry/pull",
            json={"image": f"{fake.host}/{REPO}:v1", "timeout": 1e-9},
            headers=tokens("upload"),
        )
        events = client.get(
            "/v1/audit/events", params={"type": "registry.pull_failed"}, headers=tokens("read")
        )

    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "registry_not_allowed")
    assert "registry_not_allowed" in events.text
    assert fake.hits == []
