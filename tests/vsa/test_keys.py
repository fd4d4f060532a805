"""The VSA signing key: generated once, shared, rotated with the old public key still published."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from app.verification.keyring import spki_key_id
from app.vsa.envelope import sign_statement
from app.vsa.keys import VsaKeyring
from app.vsa.offline import Expectations, verify_vsa
from tests.policy.helpers import NOW

STATEMENT = {
    "_type": "https://in-toto.io/Statement/v1",
    "subject": [{"name": "x", "digest": {"sha256": "a" * 64}}],
    "predicateType": "https://slsa.dev/verification_summary/v1",
    "predicate": {
        "verifier": {"id": "https://v"},
        "timeVerified": "2026-03-01T11:00:00Z",
        "resourceUri": "oci://x",
        "verificationResult": "PASSED",
        "verifiedLevels": ["SLSA_BUILD_LEVEL_1"],
    },
}


def verifies(envelope: dict, pem: str) -> bool:
    report = verify_vsa(
        json.dumps(envelope).encode(), Expectations(pem.encode(), resource_uri="oci://x"), NOW
    )
    return report.ok


@pytest.mark.parametrize("algorithm", ["ecdsa-p256", "ed25519"])
def test_first_use_generates_a_private_key_that_signs(tmp_path: Path, algorithm: str) -> None:
    ring = VsaKeyring(tmp_path / "vsa", algorithm)
    signer = ring.signer()
    assert signer.algorithm == algorithm
    assert (tmp_path / "vsa" / "active.pem").stat().st_mode & 0o777 == 0o600
    assert signer.key_id == spki_key_id(signer.key.public_key())
    envelope = sign_statement(STATEMENT, signer)
    assert envelope["signatures"][0]["keyid"] == signer.key_id
    assert json.loads(base64.b64decode(envelope["payload"])) == STATEMENT
    assert verifies(envelope, signer.public_key_pem)
    # Another process sharing the directory signs with the same key.
    assert VsaKeyring(tmp_path / "vsa", algorithm).signer().key_id == signer.key_id


def test_rotation_keeps_old_vsas_verifiable_with_the_published_old_key(tmp_path: Path) -> None:
    ring = VsaKeyring(tmp_path / "vsa")
    other_process = VsaKeyring(tmp_path / "vsa")
    old = ring.signer()
    old_envelope = sign_statement(STATEMENT, old)
    retired_id, new_id = ring.rotate("ed25519")
    assert retired_id == old.key_id
    # A server that loaded the old key switches at its next signature.
    new = other_process.signer()
    assert new.key_id == new_id != old.key_id and new.algorithm == "ed25519"
    published = ring.published()
    assert [(k.key_id, k.active) for k in published] == [(new_id, True), (old.key_id, False)]
    assert verifies(old_envelope, published[1].public_key_pem)
    assert not verifies(old_envelope, published[0].public_key_pem)
    assert verifies(sign_statement(STATEMENT, new), published[0].public_key_pem)
    # The retired private key is gone: only its public half is kept.
    assert [p.name for p in (tmp_path / "vsa" / "retired").iterdir()] == [f"{old.key_id}.pub"]
    assert "PRIVATE" not in (tmp_path / "vsa" / "retired" / f"{old.key_id}.pub").read_text()
