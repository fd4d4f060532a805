"""The upload client's retry policy, against a local transport (no server needed)."""

from __future__ import annotations

from pathlib import Path

import httpx

from app.attestations.client import upload_file


def _client(handler) -> httpx.Client:
    return httpx.Client(base_url="http://provenant.test", transport=httpx.MockTransport(handler))


def test_retries_5xx_then_succeeds(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    path.write_text("{}")
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) < 3:
            return httpx.Response(503, text="busy")
        return httpx.Response(201, json={"status": "created", "id": "abc"})

    sleeps: list[float] = []
    report = upload_file(_client(handler), path, sleep=sleeps.append)
    assert report.ok
    assert len(calls) == 3
    assert sleeps == [0.5, 1.0]


def test_never_retries_a_rejection(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    path.write_text("{}")
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(
            422, json={"error": {"code": "signature_invalid", "message": "bad sig"}}
        )

    report = upload_file(_client(handler), path, sleep=lambda _: None)
    assert not report.ok
    assert len(calls) == 1
    assert "signature_invalid: bad sig" in report.describe()


def test_connection_errors_give_up_with_a_reason(tmp_path: Path) -> None:
    path = tmp_path / "b.jsonl"
    path.write_text("{}\n")

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["content-type"] == "application/jsonl"
        raise httpx.ConnectError("refused")

    report = upload_file(_client(handler), path, attempts=3, sleep=lambda _: None)
    assert not report.ok
    assert "gave up after 3 attempts" in report.describe()
