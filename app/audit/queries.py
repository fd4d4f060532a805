"""Decision queries: which admissions match a digest, image, workload, policy or time window.

Pages are newest first in (created_at, id) order, with a cursor naming the last row returned,
so a page never shifts while new decisions are recorded (they sort before the first page).
A query by digest is driven by ``admission_decision_images`` (digest, created_at, decision_id):
the database walks that index backwards and stops after a page, however many decisions name
the digest. Every other filter is evaluated on the decision rows it reaches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BeforeValidator
from sqlalchemy import ColumnElement, Row, Select, exists, select, tuple_
from sqlalchemy.orm import Session, aliased

from app.admission.models import Decision, DecisionExplanation, DecisionImage
from app.cursors import decode_time_cursor, encode_time_cursor
from app.policy.matching import parse_image

# Policy names are DNS-1123 subdomains (app/policy/schema.py): no LIKE wildcard can occur.
POLICY_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_KIND = re.compile(r"^[A-Za-z0-9]+$")
_DIGEST = re.compile(r"^([a-z0-9]+):([0-9a-fA-F]{32,128})$")


class QueryError(ValueError):
    """A parameter that cannot be a valid query: the router answers 400 with its message."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter


Cursor = tuple[datetime, str]


encode_cursor = encode_time_cursor


def decode_cursor(cursor: str) -> Cursor:
    try:
        return decode_time_cursor(cursor)
    except ValueError as exc:
        raise QueryError("cursor", "not a cursor this server issued") from exc


def _iso_time(value: object) -> object:
    """Pydantic reads a number (or a numeric string, as every query parameter is) as Unix
    seconds, so ``since=0.5`` meant 1970; the API documents date-time, so only that is taken."""
    if isinstance(value, int | float) or (
        isinstance(value, str) and _NUMERIC.fullmatch(value.strip()) is not None
    ):
        raise ValueError("expected an RFC 3339 date-time such as 2024-05-01T12:00:00Z")
    return value


_NUMERIC = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
# A time in a query or a body: RFC 3339 text only; no offset means UTC.
IsoTime = Annotated[datetime, BeforeValidator(_iso_time)]


def utc(value: datetime) -> datetime:
    """Stored times are UTC; a time without an offset is taken as UTC too."""
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError as exc:  # before year 1 once moved to UTC
        raise QueryError("time", f"{value.isoformat()} is out of range") from exc


def parse_digest(value: str, parameter: str = "digest") -> str:
    """``algorithm:hex``, lowercased, as DecisionImage and the attestation index store it."""
    match = _DIGEST.match(value.strip())
    if not match:
        raise QueryError(parameter, f"expected sha256:<hex>, got {value!r}")
    return f"{match.group(1)}:{match.group(2).lower()}"


@dataclass(frozen=True)
class DecisionFilter:
    digest: str | None = None  # "sha256:<hex>"
    image: str | None = None
    namespace: str | None = None
    kind: str | None = None
    name: str | None = None
    allowed: bool | None = None
    policy: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive

    def validated(self) -> DecisionFilter:
        if self.policy is not None and not POLICY_NAME.match(self.policy):
            raise QueryError("policy", f"{self.policy!r} is not a policy name")
        if self.kind is not None and "/" not in self.kind and not _KIND.match(self.kind):
            raise QueryError("kind", f"{self.kind!r} is neither a Kind nor group/version/Kind")
        if self.image is not None:
            _image_condition(self.image)  # raises on an unparseable reference
        since = utc(self.since) if self.since else None
        until = utc(self.until) if self.until else None
        if since and until and since >= until:
            raise QueryError("since", "since must be before until")
        digest = parse_digest(self.digest) if self.digest is not None else None
        return DecisionFilter(
            digest, self.image, self.namespace, self.kind, self.name, self.allowed, self.policy,
            since, until,
        )  # fmt: skip


# What a page shows; the stored request and the explanation are the big columns, and
# GET /v1/decisions/{id} serves them.
_SUMMARY_COLUMNS = (
    Decision.id, Decision.created_at, Decision.namespace, Decision.kind, Decision.name,
    Decision.operation, Decision.user, Decision.dry_run, Decision.allowed, Decision.outcome,
    DecisionExplanation.reasons, DecisionExplanation.images, Decision.policy_hash,
)  # fmt: skip


def find_decisions(
    session: Session, where: DecisionFilter, *, after: Cursor | None, limit: int
) -> list[Row[Any]]:
    """A page of decision summaries (rows of ``_SUMMARY_COLUMNS``), newest first; ``where``
    must be ``validated()``. One round trip, and plain rows rather than ORM objects: at a
    hundred rows a page, identity-map bookkeeping cost more than the database did."""
    keys = _page_keys(where, after, limit).subquery()
    at, key = keys.c[0], keys.c[1]
    query = (
        select(*_SUMMARY_COLUMNS)
        .join(keys, key == Decision.id)
        .join(DecisionExplanation, DecisionExplanation.sha256 == Decision.explanation_key)
        .order_by(at.desc(), key.desc())
    )
    return list(session.execute(query))


def decision_summary(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "time": utc(row.created_at).isoformat(),
        "namespace": row.namespace,
        "kind": row.kind,
        "name": row.name,
        "operation": row.operation,
        "user": row.user,
        "dry_run": row.dry_run,
        "allowed": row.allowed,
        "outcome": row.outcome,
        "reasons": row.reasons,
        "images": row.images,
        "policy_hash": row.policy_hash,
    }


def _page_keys(where: DecisionFilter, after: Cursor | None, limit: int) -> Select[Any]:
    """(created_at, id) of the page's decisions, in page order."""
    if where.digest is not None:
        at, key = DecisionImage.created_at, DecisionImage.decision_id
        # DISTINCT: two image strings of one object can name the same digest. Equal keys are
        # adjacent in the index order, so this stays a streaming walk of the index.
        query = select(at, key).where(DecisionImage.digest == where.digest).distinct()
        if _needs_decision_row(where):
            query = query.join(Decision, Decision.id == DecisionImage.decision_id)
    else:
        at, key = Decision.created_at, Decision.id
        query = select(at, key)
    conditions = _decision_conditions(where)
    if where.since is not None:
        conditions.append(at >= where.since)
    if where.until is not None:
        conditions.append(at < where.until)
    if after is not None:
        conditions.append(tuple_(at, key) < tuple_(after[0], after[1]))
    return query.where(*conditions).order_by(at.desc(), key.desc()).limit(limit)


def _needs_decision_row(where: DecisionFilter) -> bool:
    return any(
        value is not None
        for value in (
            where.image, where.namespace, where.kind, where.name, where.allowed, where.policy,
        )
    )  # fmt: skip


def _decision_conditions(where: DecisionFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if where.namespace is not None:
        conditions.append(Decision.namespace == where.namespace)
    if where.name is not None:
        conditions.append(Decision.name == where.name)
    if where.kind is not None:
        if "/" in where.kind:
            conditions.append(Decision.kind == where.kind)
        else:  # a bare Kind, whatever its group and version ("v1/Pod", "apps/v1/Deployment")
            conditions.append(Decision.kind.like(f"%/{where.kind}"))
    if where.allowed is not None:
        conditions.append(Decision.allowed.is_(where.allowed))
    if where.image is not None or where.policy is not None:
        # Aliased: it must not correlate with the DecisionImage a digest query is driven by.
        other = aliased(DecisionImage)
        if where.image is not None:
            matches = _image_condition(where.image, other)
            conditions.append(exists().where(other.decision_id == Decision.id, matches))
        if where.policy is not None:
            involved = other.policies.like(f"% {where.policy} %")
            conditions.append(exists().where(other.decision_id == Decision.id, involved))
    return conditions


def _image_condition(image: str, table: Any = DecisionImage) -> ColumnElement[bool]:
    """A repository name matches every version of it; with a digest, that digest of the
    repository; with a tag only, the image string exactly as the objects wrote it."""
    try:
        ref = parse_image(image)
    except ValueError as exc:
        raise QueryError("image", str(exc)) from exc
    if ref.digest is not None:
        return (table.repository == ref.name) & (table.digest == ref.digest_string)
    if ref.tag is not None:
        return table.image == image
    return table.repository == ref.name
