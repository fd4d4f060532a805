"""What verification proves about a document: plain data, no I/O, no framework.

These are stored at ingest and judged by policy at decision time, so they must hold
everything policy may ask about without re-verifying.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

DocumentFormat = Literal[
    "sigstore-bundle",  # any Sigstore bundle media type (v0.1 .. v0.3)
    "dsse",  # bare DSSE envelope signed with a plain key
    "intoto-link",  # in-toto link metadata (classic or DSSE-wrapped)
]


@dataclass(frozen=True)
class Subject:
    name: str
    digests: dict[str, str]  # algorithm -> lowercase hex, e.g. {"sha256": "ab12..."}


@dataclass(frozen=True)
class SignerFacts:
    kind: Literal["keyless", "key"]
    # keyless (Fulcio certificate)
    issuer: str | None = None  # OIDC issuer (extension .1.8, else legacy .1.1)
    san: str | None = None  # certificate SAN: email, URI or other name
    extensions: dict[str, str] = field(default_factory=dict)  # Fulcio 1.3.6.1.4.1.57264.1.* by name
    certificate_pem: str | None = None
    # key
    key_id: str | None = None
    # "ecdsa-p256", "ecdsa-p384", "ecdsa-p521", "ed25519", "rsa-pss", "rsa-pkcs1v15"
    key_algorithm: str | None = None
    public_key_pem: str | None = None


@dataclass(frozen=True)
class TlogFacts:
    log_id: str  # hex
    log_index: int
    integrated_time: datetime | None
    kind: str  # e.g. "dsse", "hashedrekord", "intoto"
    kind_version: str  # e.g. "0.0.1"
    inclusion: Literal["proof", "promise"]  # checkpointed inclusion proof, or only an SET


@dataclass(frozen=True)
class VerifiedDocument:
    """One verified signed document. A link or statement carries its own subjects."""

    format: DocumentFormat
    media_type: str | None  # bundle media type, or DSSE payloadType
    signers: list[SignerFacts]  # >= 1; a DSSE envelope may carry several valid signatures
    # name of the trust root that verified it ("public-good", "staging", or a policies/trust
    # name); None for bare DSSE envelopes and in-toto links (keys only: see signers)
    trust_root: str | None
    tlog: list[TlogFacts] = field(default_factory=list)
    # every configured root that verifies it, ``trust_root`` first (keyless bundles whose CA
    # several roots share: a custom root alongside a built-in one)
    trust_roots: list[str] = field(default_factory=list)
    timestamps: list[datetime] = field(default_factory=list)  # RFC 3161 and integrated times used
    content_kind: Literal["statement", "message-signature", "link"] = "statement"
    statement: dict[str, Any] | None = None  # the in-toto Statement (or the link's "signed" body)
    predicate_type: str | None = None
    subjects: list[Subject] = field(default_factory=list)
    # message signatures: the digest that was signed (subject given by the uploader)
    message_digest: tuple[str, str] | None = None  # (algorithm, hex)
