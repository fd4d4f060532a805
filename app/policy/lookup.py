"""How the engine gets its facts: one indexed query per digest, memoized per evaluation.

``db_lookup`` turns stored rows into the plain facts the engine judges; ``LookupCache`` asks
it once per digest per evaluation. In-toto layouts use the same subject index: ingest indexes
a link's products as its subjects, so "links that produced digest D" is one more lookup, and
the cache walks a build's links backwards from the image through their materials.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from app.policy.facts import StoredAttestation
from app.verification.facts import SignerFacts, Subject

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from app.attestations.models import Attestation

Lookup = Callable[[str, str], list[StoredAttestation]]

# Newest first; an image with more attestations than this is re-attested in a loop, and the
# newest ones are the ones that can still pass.
DEFAULT_LIMIT = 500
_SIGNER_FIELDS = frozenset(f.name for f in dataclasses.fields(SignerFacts))


def db_lookup(session: Session, *, limit: int = DEFAULT_LIMIT) -> Lookup:
    """``lookup(algorithm, hex)``: attestations (and links) whose subject is that digest."""
    # Imported here: the offline CLI and the engine need no ORM.
    from sqlalchemy import select

    from app.attestations.models import Attestation, AttestationSubject

    def lookup(algorithm: str, hex_digest: str) -> list[StoredAttestation]:
        ids = select(AttestationSubject.attestation_id).where(
            AttestationSubject.algorithm == algorithm,
            AttestationSubject.digest == hex_digest.lower(),
        )
        query = (
            select(Attestation)
            .where(Attestation.id.in_(ids))
            .order_by(Attestation.uploaded_at.desc(), Attestation.id)
            .limit(limit)
        )
        return [to_stored(row) for row in session.scalars(query)]

    return lookup


def to_stored(row: Attestation) -> StoredAttestation:
    return stored_attestation(row, [(s.name, s.algorithm, s.digest) for s in row.subjects])


# What the engine reads of an attestation row: ``stored_attestation`` takes an ORM row or a Core
# row selecting these columns.
STORED_COLUMNS = (
    "id", "format", "content_kind", "predicate_type", "signers", "trust_root", "statement",
    "uploaded_at", "revoked_at", "revoked_reason", "trust_roots", "media_type", "tlog_entries",
    "timestamps",
)  # fmt: skip


def stored_attestation(row: Any, subject_rows: list[tuple[str, str, str]]) -> StoredAttestation:
    """The engine's facts from a row and its (name, algorithm, digest) subject rows."""
    subjects: dict[str, dict[str, str]] = {}
    for name, algorithm, digest in subject_rows:
        subjects.setdefault(name, {})[algorithm] = digest
    return StoredAttestation(
        id=row.id,
        format=row.format,
        content_kind=row.content_kind,
        predicate_type=row.predicate_type,
        signers=[signer_from_json(s) for s in row.signers or []],
        trust_root=row.trust_root,
        statement=row.statement,
        subjects=[Subject(name=name, digests=d) for name, d in subjects.items()],
        uploaded_at=_aware(row.uploaded_at),
        revoked=row.revoked_at is not None,
        revoked_reason=row.revoked_reason,
        trust_roots=tuple(row.trust_roots or ()),
        media_type=row.media_type,
        tlog_inclusions=tuple(
            str(entry.get("inclusion"))
            for entry in row.tlog_entries or ()
            if isinstance(entry, dict)
        ),
        verified_times=len(row.timestamps or ()),
    )


def signer_from_json(data: dict[str, Any]) -> SignerFacts:
    # Fields added to SignerFacts later are absent from older rows, and the reverse.
    known = {k: v for k, v in data.items() if k in _SIGNER_FIELDS}
    known["extensions"] = dict(known.get("extensions") or {})
    return SignerFacts(**known)


def _aware(value: datetime) -> datetime:
    # SQLite hands back naive datetimes for timezone-aware columns; they were stored as UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


Digest = tuple[str, str]
MAX_LINKS = 256  # an in-toto supply chain with more links than this is not one build


class LookupCache:
    """One query per digest per evaluation: a Pod's containers often share an image, and
    every policy of an image asks about the same attestations."""

    def __init__(self, lookup: Lookup, links: Lookup) -> None:
        self._lookup = lookup
        self._links = links
        self._attestations: dict[Digest, list[StoredAttestation] | Exception] = {}
        self._link_cache: dict[Digest, list[StoredAttestation]] = {}

    def attestations(self, digest: Digest) -> list[StoredAttestation]:
        """Attestations whose subject is ``digest``, newest first; re-raises a failed lookup."""
        if digest not in self._attestations:
            try:
                found = [a for a in self._lookup(*digest) if _has_subject(a, digest)]
                found.sort(key=lambda a: a.uploaded_at, reverse=True)
                self._attestations[digest] = found
            except Exception as exc:  # reported as an error, decided by onError
                self._attestations[digest] = exc
        result = self._attestations[digest]
        if isinstance(result, Exception):
            raise result
        return result

    def links(self, digest: Digest) -> list[StoredAttestation]:
        """The links of the build that produced ``digest``: those producing it, then, step by
        step backwards, those producing what they consumed (the subject index holds a link's
        products)."""
        found: dict[str, StoredAttestation] = {}
        queue, seen = [digest], {digest}
        while queue and len(found) < MAX_LINKS:
            current = queue.pop(0)
            if current not in self._link_cache:
                # The default link lookup is the subject index again: reuse its answer.
                candidates = (
                    self.attestations(current)
                    if self._links is self._lookup
                    else self._links(*current)
                )
                self._link_cache[current] = [a for a in candidates if a.content_kind == "link"]
            for link in self._link_cache[current]:
                if link.id in found:
                    continue
                found[link.id] = link
                for material in material_digests(link):
                    if material not in seen:
                        seen.add(material)
                        queue.append(material)
        return list(found.values())


def _has_subject(attestation: StoredAttestation, digest: Digest) -> bool:
    algorithm, hex_ = digest
    return any(s.digests.get(algorithm) == hex_ for s in attestation.subjects)


def material_digests(link: StoredAttestation) -> list[Digest]:
    """What a link consumed: classic links map path -> digests; link v0.3 statements list
    resource descriptors under the predicate."""
    body = link.statement or {}
    materials: object = body.get("materials")
    if materials is None and isinstance(body.get("predicate"), dict):
        materials = body["predicate"].get("materials")
    digests: list[Any] = []
    if isinstance(materials, dict):
        digests = list(materials.values())
    elif isinstance(materials, list):
        digests = [m.get("digest") for m in materials if isinstance(m, dict)]
    return [
        (algorithm, value.lower())
        for entry in digests
        if isinstance(entry, dict)
        for algorithm, value in entry.items()
        if isinstance(value, str)
    ]
