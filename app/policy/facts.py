"""What policy judges: the verified facts stored at ingest, as plain data (no ORM, no I/O).

The attestations domain turns stored rows into these; the engine never re-verifies anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.verification.facts import SignerFacts, Subject, VerifiedDocument


@dataclass(frozen=True)
class StoredAttestation:
    id: str  # sha256 of the uploaded bytes
    format: str  # sigstore-bundle | dsse | intoto-link
    content_kind: str  # statement | message-signature | link
    predicate_type: str | None
    signers: list[SignerFacts]  # every verified signer (a DSSE envelope may carry several)
    trust_root: str | None  # which Sigstore trust root verified it (keyless and key-signed bundles)
    statement: dict[str, Any] | None  # in-toto Statement, or a link's signed body
    subjects: list[Subject]
    uploaded_at: datetime
    revoked: bool = False
    revoked_reason: str | None = None
    # Every trust root that verified it (``trust_root`` first); empty for rows stored before
    # the list was recorded, which then count as verified by ``trust_root`` alone.
    trust_roots: tuple[str, ...] = ()
    media_type: str | None = None  # bundle media type (its version), or DSSE payloadType
    tlog_inclusions: tuple[str, ...] = ()  # per transparency-log entry: "proof" | "promise"
    verified_times: int = 0  # verified sources of time: integrated times and RFC 3161 stamps

    def verified_by_root(self, name: str) -> bool:
        return name in self.trust_roots or name == self.trust_root

    extra: dict[str, Any] = field(default_factory=dict)


def from_verified(
    document: VerifiedDocument, *, id: str, subjects: list[Subject], uploaded_at: datetime
) -> StoredAttestation:
    """What ingest would store for ``document``, without a database (``policy test``)."""
    return StoredAttestation(
        id=id,
        format=document.format,
        content_kind=document.content_kind,
        predicate_type=document.predicate_type,
        signers=list(document.signers),
        trust_root=document.trust_root,
        statement=document.statement,
        subjects=subjects,
        uploaded_at=uploaded_at,
        trust_roots=tuple(document.trust_roots),
        media_type=document.media_type,
        tlog_inclusions=tuple(entry.inclusion for entry in document.tlog),
        verified_times=len(document.timestamps),
    )
