"""The upload client's retry policy, against a local transport (no server needed)."""

from __future__ import annotations

import json
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


def test_each_retry_is_reported_with_its_reason(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    path.write_text("{}")
    answers = iter([httpx.Response(503, text="busy"), httpx.Response(201, json={"id": "x"})])
    logged: list[str] = []
    report = upload_file(
        _client(lambda r: next(answers)), path, sleep=lambda _: None, on_retry=logged.append
    )
    assert report.ok
    assert logged == [f"{path}: attempt 1 of 5 failed (server error 503: busy); retrying in 0.5 s"]


def test_npm_attestations_file_is_split_into_its_bundles(tmp_path: Path) -> None:
    from app.attestations.client import documents

    path = tmp_path / "pkg-1.0.0.tgz.json"
    path.write_text(
        json.dumps(
            {
                "attestations": [
                    {
                        "predicateType": "https://github.com/npm/attestation/tree/main/specs/publish/v0.1",
                        "bundle": {"mediaType": "a"},
                    },
                    {
                        "predicateType": "https://slsa.dev/provenance/v1",
                        "bundle": {"mediaType": "b"},
                    },
                ]
            }
        )
    )
    docs = documents(path)
    assert [json.loads(d.data)["mediaType"] for d in docs] == ["a", "b"]
    assert docs[1].label == f"{path}#attestations[1] (https://slsa.dev/provenance/v1)"
    plain = tmp_path / "bundle.json"
    plain.write_text('{"mediaType": "c"}')
    assert [d.data for d in documents(plain)] == [b'{"mediaType": "c"}']


def test_rejections_name_the_next_step(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    path.write_text("{}")
    body = {"error": {"code": "untrusted_key", "message": "signed by no trusted key"}}
    report = upload_file(_client(lambda r: httpx.Response(422, json=body)), path)
    assert "next: add the signer's public key (PEM) under policies/keys/" in report.describe()
