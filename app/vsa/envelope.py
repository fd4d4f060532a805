"""A signed VSA: DSSE envelope, or the same envelope in a key-signed Sigstore bundle."""

from __future__ import annotations

import base64
from typing import Any

import orjson

from app.verification.dsse import IN_TOTO_PAYLOAD_TYPE, DecodedEnvelope
from app.vsa.keys import VsaSigner

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"


def sign_statement(statement: dict[str, Any], signer: VsaSigner) -> dict[str, Any]:
    """A DSSE envelope over ``statement``; its keyid is the VSA key id (sha256 of the SPKI)."""
    payload = orjson.dumps(statement)
    pae = DecodedEnvelope(IN_TOTO_PAYLOAD_TYPE, payload, []).pae()
    return {
        "payloadType": IN_TOTO_PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [
            {"keyid": signer.key_id, "sig": base64.b64encode(signer.sign(pae)).decode()}
        ],
    }


def as_bundle(envelope: dict[str, Any], key_id: str) -> dict[str, Any]:
    """The envelope as a Sigstore bundle signed with a public key named by its hint. It carries
    no transparency log entry: verify it with the public key and no log (e.g. cosign's
    ``--insecure-ignore-tlog``); Provenant's upload wants the DSSE form, and its registry
    discovery unwraps this bundle to it (``vsa push``)."""
    return {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": key_id}, "tlogEntries": []},
        "dsseEnvelope": envelope,
    }
