"""Who may sign: keyless identities (issuer, SAN, Fulcio claims, trust root) and public keys.

Matching runs on the signer facts stored at ingest; every mismatch is returned as a sentence
saying what was expected and what was found, because that sentence is what a developer sees
when admission denies a Pod.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import lru_cache

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from app.policy.facts import StoredAttestation
from app.verification.facts import SignerFacts

_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\s.*?-----END \1-----", re.DOTALL)


def _short(fingerprint: str) -> str:
    return f"sha256:{fingerprint[:16]}"


@lru_cache(maxsize=4096)
def spki_der(public_key_pem: str) -> bytes | None:
    """DER SubjectPublicKeyInfo of a stored PEM key: PEM text differs in wrapping and line
    endings between tools, the DER does not. Cached: the same signers recur in every
    evaluation of an image."""
    try:
        key = serialization.load_pem_public_key(public_key_pem.encode())
    except (ValueError, UnsupportedAlgorithm):
        return None
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def signer_identity(signer: SignerFacts) -> str:
    """What makes two signers distinct for ``count``: the key, or the keyless identity (one
    CI workflow signing twice with two ephemeral certificates is still one signer)."""
    if signer.kind == "keyless":
        return f"keyless:{signer.issuer}|{signer.san}"
    der = spki_der(signer.public_key_pem) if signer.public_key_pem else None
    return f"key:{hashlib.sha256(der).hexdigest()}" if der else f"key-id:{signer.key_id}"


def describe_signer(signer: SignerFacts) -> str:
    if signer.kind == "keyless":
        return f"keyless signer {signer.san} (issuer {signer.issuer})"
    der = spki_der(signer.public_key_pem) if signer.public_key_pem else None
    if der:
        return f"key {_short(hashlib.sha256(der).hexdigest())}"
    return f"key id {signer.key_id}"


def signer_as_cel(signer: SignerFacts) -> dict[str, object]:
    """The ``signer`` variable of CEL conditions."""
    return {
        "kind": signer.kind,
        "issuer": signer.issuer,
        "subject": signer.san,
        "san": signer.san,
        "extensions": dict(signer.extensions),
        "keyId": signer.key_id,
        "keyAlgorithm": signer.key_algorithm,
    }


@dataclass(frozen=True)
class Identity:
    issuer: str | None
    issuer_regexp: re.Pattern[str] | None
    subject: str | None
    subject_regexp: re.Pattern[str] | None

    def matches(self, signer: SignerFacts) -> bool:
        # Regular expressions are anchored on purpose: an unanchored "github.com/acme" would
        # also accept "github.com/acme-evil".
        return _field_matches(signer.issuer, self.issuer, self.issuer_regexp) and _field_matches(
            signer.san, self.subject, self.subject_regexp
        )

    def describe(self) -> str:
        issuer = self.issuer or f"matching {self.issuer_regexp.pattern}"  # type: ignore[union-attr]
        subject = self.subject or f"matching {self.subject_regexp.pattern}"  # type: ignore[union-attr]
        return f"issuer {issuer} with subject {subject}"


def _field_matches(value: str | None, exact: str | None, pattern: re.Pattern[str] | None) -> bool:
    if value is None:
        return False
    if exact is not None:
        return value == exact
    return pattern is not None and pattern.fullmatch(value) is not None


_BUNDLE_VERSION = re.compile(r"bundle(?:\+json;version=|\.v)(\d+\.\d+)")


def bundle_version(media_type: str | None) -> tuple[int, ...] | None:
    """(0, 3) of ``application/vnd.dev.sigstore.bundle.v0.3+json`` (or ``+json;version=0.1``)."""
    match = _BUNDLE_VERSION.search(media_type or "")
    return tuple(int(part) for part in match.group(1).split(".")) if match else None


@dataclass(frozen=True)
class EvidenceRules:
    """How much transparency evidence an authority demands beyond ingest's (the bundle spec):
    sigstore-python's and the gh CLI's verification policies, stated per authority."""

    require_inclusion_proof: bool = False
    min_bundle_version: tuple[int, ...] | None = None
    verified_timestamps: int | None = None

    def problem(self, attestation: StoredAttestation) -> str | None:
        inclusions = attestation.tlog_inclusions
        if self.require_inclusion_proof and (not inclusions or "promise" in inclusions):
            return (
                "requires a checkpointed inclusion proof (requireInclusionProof), but the "
                "attestation's transparency-log entry carries only an inclusion promise"
            )
        if self.min_bundle_version is not None:
            found = bundle_version(attestation.media_type)
            if found is None or found < self.min_bundle_version:
                wanted = ".".join(map(str, self.min_bundle_version))
                have = ".".join(map(str, found)) if found else attestation.media_type
                return f"requires bundle version {wanted} or later (minBundleVersion), found {have}"
        wanted_times = self.verified_timestamps
        if wanted_times is not None and attestation.verified_times < wanted_times:
            return (
                f"requires {wanted_times} verified timestamps (verifiedTimestamps: log "
                f"integrated times and RFC 3161 stamps), found {attestation.verified_times}"
            )
        return None


@dataclass(frozen=True)
class KeylessAuthority:
    name: str
    trust_root: str
    identities: tuple[Identity, ...]
    claims: tuple[tuple[str, str], ...] = ()
    claims_regexp: tuple[tuple[str, re.Pattern[str]], ...] = ()
    evidence: EvidenceRules = field(default_factory=EvidenceRules)

    def mismatch(self, attestation: StoredAttestation, signer: SignerFacts) -> str | None:
        """None when ``signer`` of ``attestation`` is this authority, else why not."""
        if signer.kind != "keyless":
            return f"{self.name} expects a keyless signer, found {describe_signer(signer)}"
        problem = self.evidence.problem(attestation)
        if problem:
            return f"{self.name} {problem}"
        if not attestation.verified_by_root(self.trust_root):
            found = ", ".join(attestation.trust_roots) or attestation.trust_root
            return (
                f"{self.name} expects trust root {self.trust_root}, the attestation was "
                f"verified by {found or 'no Sigstore trust root'}"
            )
        if not any(identity.matches(signer) for identity in self.identities):
            expected = "; or ".join(i.describe() for i in self.identities)
            return (
                f"{self.name} expects {expected}; found issuer {signer.issuer} with subject "
                f"{signer.san}"
            )
        for claim, value in self.claims:
            found = signer.extensions.get(claim)
            if found != value:
                return f"{self.name} expects claim {claim} {value!r}, found {_claim(found)}"
        for claim, pattern in self.claims_regexp:
            found = signer.extensions.get(claim)
            if found is None or pattern.fullmatch(found) is None:
                return (
                    f"{self.name} expects claim {claim} matching {pattern.pattern!r}, "
                    f"found {_claim(found)}"
                )
        return None


def _claim(value: str | None) -> str:
    return "no such certificate extension" if value is None else repr(value)


@dataclass(frozen=True)
class KeyAuthority:
    name: str
    keys: tuple[bytes, ...]  # DER SubjectPublicKeyInfo
    source: str  # file name, or "inline"

    @property
    def fingerprints(self) -> tuple[str, ...]:
        return tuple(hashlib.sha256(der).hexdigest() for der in self.keys)

    def mismatch(self, attestation: StoredAttestation, signer: SignerFacts) -> str | None:
        # Same test for key-signed Sigstore bundles and bare DSSE envelopes: both store the
        # verifying public key, and the trust root plays no part in trusting a key.
        expected = ", ".join(_short(f) for f in self.fingerprints)
        if signer.kind != "key":
            return f"{self.name} expects key {expected}, found {describe_signer(signer)}"
        der = spki_der(signer.public_key_pem) if signer.public_key_pem else None
        if der is not None and der in self.keys:
            return None
        found = describe_signer(signer)
        return f"{self.name} expects key {expected} ({self.source}), found {found}"


Authority = KeylessAuthority | KeyAuthority


def compile_regexp(text: str) -> re.Pattern[str]:
    try:
        return re.compile(text)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {text!r}: {exc}") from exc


def load_public_keys(pem: bytes, source: str) -> tuple[bytes, ...]:
    """DER SubjectPublicKeyInfo of every PEM public key in ``pem``; ValueError says why not."""
    text = pem.decode("utf-8", errors="replace")
    keys: list[bytes] = []
    for block in _PEM_BLOCK.finditer(text):
        label = block.group(1)
        if "PRIVATE" in label:
            raise ValueError(f"{source} holds a private key: configure only the public key")
        if label == "CERTIFICATE":
            raise ValueError(
                f"{source} is a certificate, not a public key (extract it with: "
                "openssl x509 -pubkey -noout -in FILE)"
            )
        der = spki_der(block.group(0))
        if der is None:
            raise ValueError(f"{source}: not a usable PEM public key")
        keys.append(der)
    if not keys:
        raise ValueError(f"{source}: no PEM public key (-----BEGIN PUBLIC KEY-----) found")
    return tuple(keys)
