"""The /v1/audit endpoints, checked with nothing but the public key and independent code."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi.testclient import TestClient
from sigstore._internal.rekor.checkpoint import SignedCheckpoint as SigstoreCheckpoint

from app.audit import keys, leaf, merkle
from app.audit.checkpoint import verify_note
from app.db import Database
from tests.audit.conftest import ORIGIN, append
from tests.audit.test_merkle import ref_mth, ref_proof, sigstore_verify_inclusion
from tests.helpers import TokenFactory


@pytest.fixture
def read(tokens: TokenFactory) -> dict[str, str]:
    return tokens("read")


def public_key(client: TestClient, headers: dict[str, str]) -> Ed25519PublicKey:
    response = client.get("/v1/audit/public-key", params={"format": "pem"}, headers=headers)
    assert response.status_code == 200, response.text
    return keys.load_public_key(response.content)


def all_events(client: TestClient, headers: dict[str, str], **params: object) -> list[dict]:
    out: list[dict] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/audit/events", params=query, headers=headers).json()
        out += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return out


def canonical(event: dict) -> bytes:
    return leaf.leaf_input(
        event["seq"], event["time"], event["type"], event["actor"], event["payload_hash"]
    )


def test_every_endpoint_needs_the_read_scope(client: TestClient, tokens: TokenFactory) -> None:
    paths = [
        "/v1/audit/checkpoint",
        "/v1/audit/proof/inclusion?seq=0",
        "/v1/audit/proof/consistency?from=0",
        "/v1/audit/events",
        "/v1/audit/export",
        "/v1/audit/verify",
        "/v1/audit/public-key",
    ]
    upload = tokens("upload")
    for path in paths:
        assert client.get(path).status_code == 401, path
        denied = client.get(path, headers=upload)
        assert denied.status_code == 403, path
        assert denied.json()["error"]["code"] == "forbidden"
    admin = tokens("admin")
    assert client.get("/v1/audit/public-key", headers=admin).status_code == 200


def test_key_is_generated_outside_the_database(
    client: TestClient, read: dict[str, str], key_file: Path
) -> None:
    info = client.get("/v1/audit/public-key", headers=read).json()
    assert key_file.exists() and stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert info["origin"] == ORIGIN and info["algorithm"] == "ed25519"
    name, key = keys.parse_verifier_key(info["verifier_key"])
    assert name == ORIGIN
    assert keys.public_pem(key) == info["public_key_pem"]


def test_checkpoint_latest_fresh_and_note(
    client: TestClient, db: Database, read: dict[str, str]
) -> None:
    key = public_key(client, read)
    first = client.get("/v1/audit/checkpoint", headers=read).json()
    size0 = first["tree_size"]  # token creation is an event too
    append(db, 5)
    stale = client.get("/v1/audit/checkpoint", headers=read).json()
    assert stale["tree_size"] == size0  # the latest signed one, until the next checkpoint
    fresh = client.get("/v1/audit/checkpoint", params={"fresh": "true"}, headers=read).json()
    assert fresh["tree_size"] == size0 + 5
    checkpoint = verify_note(fresh["note"], key)
    assert checkpoint.root_hash.hex() == fresh["root_hash"]
    leaves = [canonical(e) for e in all_events(client, read)]
    assert checkpoint.root_hash == ref_mth(leaves)
    text = client.get("/v1/audit/checkpoint", params={"format": "note"}, headers=read)
    assert text.headers["content-type"].startswith("text/plain")
    assert text.text == fresh["note"]
    assert SigstoreCheckpoint.from_text(text.text).checkpoint.log_size == size0 + 5


def test_inclusion_proofs_verify_independently_for_many_sizes(
    client: TestClient, db: Database, read: dict[str, str]
) -> None:
    append(db, 40)
    events = all_events(client, read)
    data = [canonical(e) for e in events]
    total = len(events)
    for size in range(1, total + 1, 3):
        root = ref_mth(data[:size])
        for seq in {0, size // 2, size - 1}:
            proof = client.get(
                "/v1/audit/proof/inclusion", params={"seq": seq, "tree_size": size}, headers=read
            ).json()
            assert proof["root_hash"] == root.hex()
            assert proof["leaf_hash"] == events[seq]["leaf_hash"]
            hashes = [bytes.fromhex(h) for h in proof["hashes"]]
            sigstore_verify_inclusion(data[seq], seq, size, hashes, root)
    current = client.get("/v1/audit/proof/inclusion", params={"seq": 3}, headers=read).json()
    assert current["tree_size"] == total


def test_consistency_proofs_match_the_reference(
    client: TestClient, db: Database, read: dict[str, str]
) -> None:
    append(db, 30)
    data = [canonical(e) for e in all_events(client, read)]
    total = len(data)
    for new in range(1, total + 1, 4):
        for old in range(0, new + 1, 3):
            proof = client.get(
                "/v1/audit/proof/consistency", params={"from": old, "to": new}, headers=read
            ).json()
            hashes = [bytes.fromhex(h) for h in proof["hashes"]]
            assert proof["from"] == old and proof["to"] == new
            assert hashes == (ref_proof(old, data[:new]) if 0 < old < new else [])
            assert proof["to_root_hash"] == ref_mth(data[:new]).hex()
            merkle.verify_consistency(old, new, ref_mth(data[:old]), ref_mth(data[:new]), hashes)


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/audit/proof/inclusion", {"seq": 5, "tree_size": 5}),
        ("/v1/audit/proof/inclusion", {"seq": 0, "tree_size": 999}),
        ("/v1/audit/proof/inclusion", {"seq": -1}),
        ("/v1/audit/proof/inclusion", {"seq": "x"}),
        ("/v1/audit/proof/inclusion", {"seq": 0, "tree_size": 0}),
        ("/v1/audit/proof/inclusion", {"seq": 2**70}),
        ("/v1/audit/proof/inclusion", {}),
        ("/v1/audit/proof/inclusion", {"seq": 999}),
        ("/v1/audit/proof/consistency", {"from": 4, "to": 3}),
        ("/v1/audit/proof/consistency", {"from": 1, "to": 999}),
        ("/v1/audit/proof/consistency", {"from": -2}),
        ("/v1/audit/proof/consistency", {"to": 3}),
        ("/v1/audit/proof/consistency", {"from": 2**64}),
        ("/v1/audit/events", {"cursor": "garbage"}),
        ("/v1/audit/events", {"cursor": "c2VxOi0x"}),
        ("/v1/audit/events", {"cursor": "c2VxOjk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OQ"}),
        ("/v1/audit/events", {"cursor": "%%%"}),
        ("/v1/audit/events", {"limit": 0}),
        ("/v1/audit/events", {"limit": 100000}),
        ("/v1/audit/events", {"since": "yesterday"}),
        ("/v1/audit/events", {"since": "0001-01-01T00:00:00+01:00"}),
        ("/v1/audit/events", {"type": "x" * 65}),
        ("/v1/audit/checkpoint", {"format": "xml"}),
        ("/v1/audit/checkpoint", {"fresh": "maybe"}),
    ],
)
def test_bad_parameters_are_400_in_the_error_shape(
    client: TestClient, db: Database, read: dict[str, str], path: str, params: dict
) -> None:
    append(db, 5)
    response = client.get(path, params=params, headers=read)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] in ("invalid_request", "invalid_parameter")
    assert error["message"]


def test_events_filters_and_cursor(client: TestClient, db: Database, read: dict[str, str]) -> None:
    append(db, 7, type_="a.thing")
    append(db, 5, type_="b.thing")
    everything = all_events(client, read, limit=3)
    assert [e["seq"] for e in everything] == list(range(len(everything)))
    only_b = all_events(client, read, type="b.thing", limit=2)
    assert [e["payload"]["i"] for e in only_b] == [0, 1, 2, 3, 4]
    cut = everything[-3]["time"]
    since = all_events(client, read, since=cut)
    assert [e["seq"] for e in since] == [e["seq"] for e in everything if e["time"] >= cut]
    for event in everything:
        assert event["payload_hash"] == leaf.payload_hash(event["payload"])
        assert event["leaf_hash"] == merkle.hash_leaf(canonical(event)).hex()


def test_pagination_is_stable_while_events_are_appended(
    client: TestClient, db: Database, read: dict[str, str]
) -> None:
    append(db, 10, type_="page.test")
    seen: list[int] = []
    cursor = None
    for round_ in range(50):
        params = {"type": "page.test", "limit": 4, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/audit/events", params=params, headers=read).json()
        seen += [e["seq"] for e in page["items"]]
        if round_ < 6:
            append(db, 3, type_="page.test")  # appended between pages
            append(db, 1, type_="other")
        cursor = page["next_cursor"]
        if cursor is None:
            break
    expected = [e["seq"] for e in all_events(client, read, type="page.test")]
    assert seen == expected  # every event exactly once, in order: nothing skipped or repeated
    assert len(seen) == 10 + 6 * 3


def test_export_is_events_then_a_checkpoint_covering_exactly_them(
    client: TestClient, db: Database, read: dict[str, str]
) -> None:
    append(db, 12)
    key = public_key(client, read)
    response = client.get("/v1/audit/export", headers=read)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in response.text.splitlines()]
    *events, last = lines
    checkpoint = verify_note(last["checkpoint"], key)
    assert checkpoint.tree_size == len(events) == last["tree_size"]
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert checkpoint.root_hash == ref_mth([canonical(e) for e in events])


def test_verify_endpoint_on_a_good_log(
    client: TestClient, db: Database, read: dict[str, str]
) -> None:
    append(db, 20)
    client.get("/v1/audit/checkpoint", params={"fresh": "true"}, headers=read)
    append(db, 3)
    report = client.get("/v1/audit/verify", headers=read).json()
    assert report["ok"] is True, report
    assert report["first_bad_seq"] is None
    assert report["checkpoints_checked"] >= 1
    assert report["tree_size"] == report["events_checked"] >= 23
