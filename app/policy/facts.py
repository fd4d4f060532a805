"""What policy judges: the verified facts stored at ingest, as plain data (no ORM, no I/O).

The attestations domain turns stored rows into these; the engine never re-verifies anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.verification.facts import SignerFacts, Subject


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
    extra: dict[str, Any] = field(default_factory=dict)
