"""``provenant vsa verify``: slsa-verifier ``verify-vsa``'s checks, offline, with the code the
service itself uses (the DSSE-with-keys verifier of ingest, the VSA checks of policy).

In slsa-verifier's order: the signature with the given public key (and, when given, the
signature's key id), the subject digests, then the Statement's verifier id, resource URI,
verification result PASSED and verified levels. Provenant adds two checks slsa-verifier leaves
to its caller: freshness (``max_age`` against ``timeVerified``) and the policy digest.
Failures carry slsa-verifier's error names.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from app.policy.slsa import VSA_V02, VSA_V1, SlsaRequirement, check_slsa
from app.policy.vsa import VsaRequirement, verify_policy, verify_time_verified
from app.verification.dsse import verify_dsse_envelope
from app.verification.errors import VerificationError
from app.verification.facts import VerifiedDocument
from app.verification.keyring import index_public_key
from app.verification.trust import TrustStore

MAX_FILE_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class Expectations:
    public_key_pem: bytes
    public_key_id: str | None = None  # None: any signature the key verifies
    subject_digests: Sequence[str] = ()  # "algorithm:value", each must be a subject's
    verifier_id: str | None = None
    resource_uri: str | None = None
    verified_levels: Sequence[str] = ()
    max_age: timedelta | None = None
    policy_digest: tuple[str, str] | None = None


@dataclass
class Report:
    ok: bool
    error: str | None  # slsa-verifier's name for the first failure
    reason: str
    statement: dict[str, Any] | None = None
    checks: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        predicate = (self.statement or {}).get("predicate") or {}
        return {
            "verified": self.ok,
            "error": self.error,
            "reason": self.reason,
            "verifier": (predicate.get("verifier") or {}).get("id"),
            "resourceUri": predicate.get("resourceUri"),
            "verificationResult": predicate.get("verificationResult"),
            "verifiedLevels": predicate.get("verifiedLevels"),
            "timeVerified": predicate.get("timeVerified"),
            "policy": predicate.get("policy"),
            "checks": self.checks,
        }


def _fail(error: str, reason: str, statement: dict[str, Any] | None = None) -> Report:
    return Report(False, error, reason, statement)


def read_envelope(data: bytes) -> Mapping[str, Any]:
    """A DSSE envelope, bare, in a Sigstore bundle, or the first line of a .intoto.jsonl."""
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"file is larger than {MAX_FILE_BYTES} bytes")
    text = data.decode("utf-8", errors="strict").strip()
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        # .intoto.jsonl: one envelope a line; slsa-verifier reads the first.
        document = json.loads(text.splitlines()[0]) if text else None
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    envelope = document.get("dsseEnvelope", document)
    if not isinstance(envelope, dict) or "payload" not in envelope:
        raise ValueError("no DSSE envelope (payloadType, payload, signatures)")
    return envelope


def trust_for(public_key_pem: bytes) -> TrustStore:
    try:
        key = serialization.load_pem_public_key(public_key_pem)
        return TrustStore(keys=index_public_key(key, "--public-key"))
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ValueError(f"--public-key is not a usable PEM public key: {exc}") from exc


def verify_vsa(data: bytes, expect: Expectations, now: datetime) -> Report:
    try:
        trust = trust_for(expect.public_key_pem)
    except ValueError as exc:
        return _fail("ErrorInvalidPublicKey", str(exc))
    try:
        envelope = dict(read_envelope(data))
    except (ValueError, UnicodeDecodeError) as exc:
        return _fail("ErrorInvalidDssePayload", f"not a VSA envelope: {exc}")
    if expect.public_key_id is not None:
        # slsa-verifier matches the signature's keyid exactly; an unmatched id is no signature.
        signatures = envelope.get("signatures")
        kept = [
            s
            for s in (signatures if isinstance(signatures, list) else [])
            if isinstance(s, Mapping) and s.get("keyid") == expect.public_key_id
        ]
        if not kept:
            return _fail(
                "ErrorNoValidSignature",
                f"no signature has key id {expect.public_key_id!r}",
            )
        envelope["signatures"] = kept
    try:
        document = verify_dsse_envelope(envelope, trust)
    except VerificationError as exc:
        return _fail("ErrorNoValidSignature", f"{exc.code}: {exc}")
    return judge(document, expect, now)


def judge(document: VerifiedDocument, expect: Expectations, now: datetime) -> Report:
    statement = document.statement or {}
    if document.predicate_type not in (VSA_V1, VSA_V02):
        return _fail(
            "ErrorInvalidDssePayload",
            f"predicate type {document.predicate_type} is not a VSA",
            statement,
        )
    missing = [d for d in expect.subject_digests if not _has_digest(document, d)]
    if missing:
        return _fail(
            "ErrorMissingSubjectDigest", f"expected digest not found: {missing[0]}", statement
        )
    summary = check_slsa(
        SlsaRequirement(
            verifier_id=expect.verifier_id,
            resource_uri=expect.resource_uri,
            verified_levels=tuple(expect.verified_levels),
        ),
        statement,
    )
    checks = list(summary.details.get("checks", []))
    if not summary.passed:
        report = _fail(summary.details.get("error") or "ErrorInvalidDssePayload", summary.reason)
        report.statement, report.checks = statement, checks
        return report
    predicate = statement.get("predicate") or {}
    policy_rule = VsaRequirement("", "", "", policy_digest=expect.policy_digest)
    problems = verify_policy(policy_rule, predicate.get("policy"))
    if problems:
        return Report(False, "ErrorMismatchPolicy", problems[0], statement, checks)
    if expect.max_age is not None or predicate.get("timeVerified") is not None:
        problems = verify_time_verified(expect.max_age, predicate.get("timeVerified"), now)
        if problems:
            return Report(False, "ErrorExpiredVSA", problems[0], statement, checks)
    return Report(True, None, summary.reason, statement, checks)


def _has_digest(document: VerifiedDocument, expected: str) -> bool:
    algorithm, sep, value = expected.partition(":")
    if not sep:
        return False
    return any((s.digests.get(algorithm) or "").lower() == value.lower() for s in document.subjects)
