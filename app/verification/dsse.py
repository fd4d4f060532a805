"""Bare DSSE envelopes signed with plain (configured) keys.

Signature policy, shared with in-toto links (``verify_signatures``):

- A ``keyid`` is an unauthenticated hint (it is outside the PAE). When it names a trusted key,
  that key must verify the signature, else the whole document fails ``signature_invalid``:
  only tampering or a broken signer produces that, and a CI author should hear about it.
- When the keyid is empty or unknown (cosign and sigstore-go leave it empty, KMS signers put a
  key URI there), every trusted key is tried. Other signatures may still carry the document.
- At least one signature must verify with a trusted key, else ``untrusted_key``: with no
  trusted key matching we cannot tell an unknown signer from an altered payload, and the
  message says both.
- Every signature that verifies is reported, once per key.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from securesystemslib.dsse import Envelope as SSlibEnvelope

from app import limits
from app.verification import strict_json
from app.verification.errors import (
    MALFORMED,
    SIGNATURE_INVALID,
    TLOG_EVIDENCE_MISSING,
    TOO_MANY_SIGNATURES,
    UNSUPPORTED_FORMAT,
    UNTRUSTED_KEY,
    VerificationError,
)
from app.verification.facts import SignerFacts, VerifiedDocument
from app.verification.keyring import TrustedKey
from app.verification.statement import parse_statement
from app.verification.trust import TrustStore

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"


@dataclass(frozen=True)
class RawSignature:
    keyid: str
    signature: bytes


@dataclass(frozen=True)
class DecodedEnvelope:
    payload_type: str
    payload: bytes
    signatures: list[RawSignature]

    def pae(self) -> bytes:
        """DSSEv1 pre-authentication encoding: what the signatures cover."""
        return SSlibEnvelope(self.payload, self.payload_type, {}).pae()

    def payload_json(self) -> dict[str, Any]:
        data = strict_json.loads(self.payload, "the DSSE payload")
        if not isinstance(data, dict):
            raise VerificationError(MALFORMED, "DSSE payload is not a JSON object")
        return data


def b64decode(value: object, what: str) -> bytes:
    """Standard or URL-safe base64, padded or not: the DSSE spec allows either alphabet."""
    if not isinstance(value, str):
        raise VerificationError(MALFORMED, f"{what} must be a base64 string")
    text = value.strip()
    text += "=" * (-len(text) % 4)
    try:
        if "-" in text or "_" in text:
            return base64.b64decode(text, altchars=b"-_", validate=True)
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise VerificationError(MALFORMED, f"{what} is not valid base64") from exc


def decode_envelope(envelope: Mapping[str, Any]) -> DecodedEnvelope:
    """Check the DSSE envelope shape and decode payload and signatures (no crypto yet)."""
    payload_type = envelope.get("payloadType")
    if not isinstance(payload_type, str) or not payload_type:
        raise VerificationError(MALFORMED, "DSSE envelope has no payloadType")
    payload = b64decode(envelope.get("payload"), "DSSE payload")
    raw_signatures = envelope.get("signatures")
    if not isinstance(raw_signatures, list):
        raise VerificationError(MALFORMED, "DSSE envelope has no signatures list")
    check_signature_count(len(raw_signatures), "DSSE envelope")
    signatures = []
    for index, entry in enumerate(raw_signatures):
        if not isinstance(entry, Mapping):
            raise VerificationError(MALFORMED, f"DSSE signatures[{index}] is not an object")
        keyid = entry.get("keyid") or ""
        if not isinstance(keyid, str):
            raise VerificationError(MALFORMED, f"DSSE signatures[{index}].keyid is not a string")
        sig = b64decode(entry.get("sig"), f"DSSE signatures[{index}].sig")
        signatures.append(RawSignature(keyid, sig))
    return DecodedEnvelope(payload_type, payload, signatures)


def check_signature_count(count: int, what: str) -> None:
    """Each signature may cost a check against every trusted key: bounded before any is."""
    most = limits.current().max_signatures
    if count > most:
        raise VerificationError(
            TOO_MANY_SIGNATURES,
            f"{what} carries {count} signatures; the limit is {most} (PROVENANT_MAX_SIGNATURES)",
            {"limit": "PROVENANT_MAX_SIGNATURES", "max": most},
        )


def verify_signatures(
    signatures: Sequence[RawSignature], message: bytes, trust: TrustStore, what: str
) -> list[SignerFacts]:
    """Apply the module's signature policy; ``what`` names the document in messages."""
    if not signatures:
        raise VerificationError(SIGNATURE_INVALID, f"{what} carries no signatures")
    signers: dict[str, SignerFacts] = {}
    unmatched: list[str] = []
    for sig in signatures:
        named = trust.keys.get(sig.keyid) if sig.keyid else None
        if named is not None:
            algorithm = named.verifying_algorithm(sig.signature, message)
            if algorithm is None:
                raise VerificationError(
                    SIGNATURE_INVALID,
                    f"{what}: the signature by trusted key {sig.keyid} ({named.source}) does "
                    "not verify; the content was changed after signing or the signature is "
                    "corrupt",
                )
            signers.setdefault(named.key_id, _signer(named, algorithm))
            continue
        found = _try_every_key(trust.keys.values(), sig.signature, message)
        if found is None:
            unmatched.append(sig.keyid or "(empty)")
        else:
            signers.setdefault(found[0].key_id, _signer(*found))
    if not signers:
        raise VerificationError(
            UNTRUSTED_KEY,
            f"{what}: no trusted key verifies its signature (key id "
            f"{', '.join(unmatched)}); configure the signer's public key under policies/keys "
            "or a layout, or check that the content was not changed after signing",
            details={"keyids": unmatched},
        )
    return list(signers.values())


def _try_every_key(
    keys: Iterable[TrustedKey], signature: bytes, message: bytes
) -> tuple[TrustedKey, str] | None:
    seen: set[tuple[str, str]] = set()
    for key in keys:
        if (key.key_id, key.algorithm) in seen:
            continue
        seen.add((key.key_id, key.algorithm))
        algorithm = key.verifying_algorithm(signature, message)
        if algorithm is not None:
            return key, algorithm
    return None


def _signer(key: TrustedKey, algorithm: str) -> SignerFacts:
    return SignerFacts(
        kind="key",
        key_id=key.key_id,
        key_algorithm=algorithm,
        public_key_pem=key.public_key_pem,
    )


def _carries_certificate(envelope: Mapping[str, Any]) -> bool:
    """Whether a signature entry carries a certificate (cosign's and slsa-github-generator's
    ``signatures[].cert``)."""
    entries = envelope.get("signatures")
    return isinstance(entries, list) and any(
        isinstance(entry, Mapping) and entry.get("cert") for entry in entries
    )


def verify_dsse_envelope(envelope: Mapping[str, Any], trust: TrustStore) -> VerifiedDocument:
    """Verify a DSSE envelope carrying an in-toto Statement (or an in-toto link).

    Raises VerificationError: ``malformed``, ``unsupported_format`` (payloadType),
    ``signature_invalid``, ``untrusted_key``, ``statement_invalid``, ``subject_missing``.
    """
    decoded = decode_envelope(envelope)
    if decoded.payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise VerificationError(
            UNSUPPORTED_FORMAT,
            f"DSSE payloadType {decoded.payload_type!r} is not supported; "
            f"expected {IN_TOTO_PAYLOAD_TYPE}",
        )
    body = decoded.payload_json()
    from app.verification import links  # links builds on this module

    if links.is_link_payload(body):
        return links.verify_dsse_link(decoded, trust)
    try:
        signers = verify_signatures(decoded.signatures, decoded.pae(), trust, "DSSE envelope")
    except VerificationError as exc:
        if exc.code == UNTRUSTED_KEY and _carries_certificate(envelope):
            raise VerificationError(
                TLOG_EVIDENCE_MISSING,
                "DSSE envelope: signed with a certificate (keyless), but uploaded without "
                "transparency-log evidence, so nothing shows the short-lived certificate was "
                "valid when it signed; upload the Sigstore bundle (.sigstore.json or "
                ".intoto.jsonl bundle line) that carries the Rekor entry",
                details={
                    "keyids": exc.details.get("keyids") if isinstance(exc.details, dict) else None
                },
            ) from exc
        raise
    # Parsed only after the signatures hold: nothing unsigned reaches the facts.
    parsed = parse_statement(body)
    return VerifiedDocument(
        format="dsse",
        media_type=decoded.payload_type,
        signers=signers,
        trust_root=None,
        content_kind="statement",
        statement=parsed.statement,
        predicate_type=parsed.predicate_type,
        subjects=parsed.subjects,
    )
