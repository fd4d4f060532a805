"""The real server process over HTTP and HTTPS."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import TokenFactory
from tests.server import ServerProcess

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_server_serves_health_and_auth(
    db_url: str, policy_dir: Path, tmp_path: Path, tokens: TokenFactory, tls: bool
) -> None:
    with ServerProcess(db_url, policy_dir, tmp_path, tls=tls) as server, server.client() as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        ready = c.get("/readyz")
        assert ready.status_code == 200, ready.text
        denied = c.get("/v1/whoami")
        assert denied.status_code == 401
        assert denied.json()["error"]["code"] == "unauthenticated"
        assert c.get("/v1/whoami", headers=tokens("read")).status_code == 200
        forbidden = c.get("/v1/tokens", headers=tokens("upload"))
        assert forbidden.status_code == 403
        assert forbidden.json()["error"]["code"] == "forbidden"
        assert "provenant_http_requests_total" in c.get("/metrics").text
