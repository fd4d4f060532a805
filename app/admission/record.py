"""Recording a decision: its row and its audit event, in one transaction.

The audit event is small (who, what, outcome, images) and carries the SHA-256 of the stored
request and explanation, so the large JSON columns are covered by the tamper-evident log too.
"""

from __future__ import annotations

import hashlib
import logging
import os
import struct
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Connection, Table, insert
from sqlalchemy.dialects import postgresql, sqlite

from app import jsoncodec
from app.admission.documents import (
    canonical_bytes,
    explanation_body,
    split_explanation,
    split_request,
    time_text,
)
from app.admission.models import (
    Decision,
    DecisionExplanation,
    DecisionImage,
    DecisionRequest,
)
from app.audit.service import PendingEvent, append_event_rows, pending_event
from app.db import Database
from app.jsoncodec import RawJSON
from app.policy.matching import parse_image

if TYPE_CHECKING:  # the recorder child imports this module: it starts without the policy engine
    from app.admission.extract import Extraction
    from app.admission.schemas import AdmissionRequest
    from app.admission.verdicts import Verdict
    from app.policy.results import ImageResult

log = logging.getLogger("provenant.admission")

DECISION_EVENT = "admission.decision"
BREAK_GLASS_EVENT = "admission.break_glass"
_ACTOR_LIMIT = 200  # audit_events.actor
_DECISIONS = Decision.__table__
_IMAGES = DecisionImage.__table__
_EXPLANATIONS = DecisionExplanation.__table__
_REQUESTS = DecisionRequest.__table__
# Copied from the message into the decision's row as they are.
_ROW_FIELDS = (
    "id", "uid", "namespace", "kind", "name", "sub_resource", "operation", "user", "caller",
    "allowed", "outcome", "policy_hash", "dry_run",
)  # fmt: skip
_EVENT_FIELDS = (
    "uid", "namespace", "kind", "name", "operation", "user", "caller", "allowed", "outcome",
    "dry_run", "policy_hash", "request_sha256",
)  # fmt: skip


def new_decision_id() -> str:
    """A UUID in the version 7 layout (48-bit milliseconds, then randomness): time-ordered, so
    PostgreSQL's index grows at one end, and unguessable enough to paste into a ticket."""
    millis = time.time_ns() // 1_000_000
    rand = _random_bits()
    rand_a, rand_b = rand >> 62, rand & (2**62 - 1)
    value = (millis & (2**48 - 1)) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    return str(uuid.UUID(int=value))


_POOL = threading.local()
_POOL_BYTES = 4096


def _random_bits() -> int:
    """74 bits from the operating system's generator, drawn from a per-thread pool: a
    ``getrandom`` call per decision released the interpreter lock on the event loop, and
    getting it back from a busy writer thread could cost a whole switch interval."""
    pool: bytes = getattr(_POOL, "bytes", b"")
    offset: int = getattr(_POOL, "offset", 0)
    if offset + 10 > len(pool):
        pool, offset = os.urandom(_POOL_BYTES), 0
        _POOL.bytes = pool
    _POOL.offset = offset + 10
    return int.from_bytes(pool[offset : offset + 10], "big") >> 6


def canonical_sha256(value: Any) -> str:
    """SHA-256 of ``canonical_bytes(value)``: recomputable from what the database returns
    (JSONB reorders keys)."""
    return hashlib.sha256(canonical_bytes(value)).hexdigest()


def without_managed_fields(request: dict[str, Any]) -> dict[str, Any]:
    """The request as received, minus ``metadata.managedFields`` (server-side apply
    bookkeeping: often the bulk of the object, never what a policy judges)."""
    copied = dict(request)
    for key in ("object", "oldObject"):
        obj = copied.get(key)
        if isinstance(obj, dict) and isinstance(obj.get("metadata"), dict):
            metadata = {k: v for k, v in obj["metadata"].items() if k != "managedFields"}
            copied[key] = {**obj, "metadata": metadata}
    return copied


@dataclass(frozen=True)
class DecisionRecord:
    id: str
    at: datetime
    request: AdmissionRequest
    review: bytes  # the AdmissionReview body as received
    extraction: Extraction | None
    verdict: Verdict
    policy_hash: str | None
    caller: str
    namespace: str | None
    name: str | None
    response: dict[str, Any]


def images_of(record: DecisionRecord) -> list[dict[str, Any]]:
    if record.extraction is None:
        return []
    results = {}
    if record.verdict.evaluation is not None:
        results = {i.image: i for i in record.verdict.evaluation.images}
    rows = []
    for image in record.extraction.images:
        result = results.get(image)
        rows.append(
            {
                "image": image,
                "digest": result.digest if result else None,
                "reference": result.reference if result else None,
                "containers": [c.label for c in record.extraction.containers_of(image)],
                "allowed": result.allowed if result else None,
                # Not stored in the images column: for the index rows (see prepare_message).
                "policies": [p.name for p in result.policies] if result else [],
            }
        )
    return rows


@dataclass(frozen=True)
class DecisionMessage:
    """A decision as the recorder receives it: the small fields as JSON data, and the two large
    documents as bytes that are already written: the explanation (canonical JSON, see
    ``explanation_json``) and the AdmissionReview exactly as it arrived."""

    header: dict[str, Any]
    explanation: bytes
    review: bytes


def to_message(record: DecisionRecord) -> DecisionMessage:
    """What the recorder needs and nothing it must compute: built where the decision was taken
    (the event loop), so the costly part (parsing the review again, copies, canonical hashes,
    rows) is left to ``prepare_message``, which runs where the decision is written."""
    gvk = record.request.kind
    header = {
        "id": record.id,
        "at": record.at.isoformat(),
        "uid": record.request.uid,
        "namespace": record.namespace,
        "kind": "/".join(p for p in (gvk.group, gvk.version, gvk.kind) if p),
        "name": record.name,
        "sub_resource": record.request.subResource,
        "operation": record.request.operation,
        "user": record.request.userInfo.username,
        "caller": record.caller,
        "images": images_of(record),
        "allowed": record.verdict.allowed,
        "outcome": record.verdict.outcome,
        "reasons": record.verdict.reasons,
        "break_glass": record.verdict.break_glass,
        "policy_hash": record.policy_hash,
        "dry_run": bool(record.request.dryRun),
    }
    return DecisionMessage(header, explanation_json(record), record.review)


def explanation_json(record: DecisionRecord) -> bytes:
    """The stored explanation as canonical JSON (the bytes ``canonical_sha256`` hashes). Each
    image's part comes pre-written from its cached evaluation, so a repeated admission does not
    write the same policy results again."""
    try:
        explanation = {**record.verdict.explanation(_image_fragment), "response": record.response}
        return orjson.dumps(explanation, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:  # a value orjson refuses: the standard library writes it
        return canonical_bytes({**record.verdict.explanation(), "response": record.response})


def _image_fragment(result: ImageResult) -> orjson.Fragment:
    return orjson.Fragment(result.canonical_json)


_LENGTH = struct.Struct(">I")


def encode(message: DecisionMessage) -> bytes:
    """Header length, header, explanation length, explanation, then the review to the end."""
    header = jsoncodec.dumps(message.header)
    explanation = message.explanation
    return b"".join(
        (_LENGTH.pack(len(header)), header, _LENGTH.pack(len(explanation)), explanation,
         message.review)
    )  # fmt: skip


def decode(data: bytes) -> DecisionMessage:
    view = memoryview(data)
    (size,) = _LENGTH.unpack_from(view)
    start = _LENGTH.size + size
    header = jsoncodec.loads(bytes(view[_LENGTH.size : start]))
    (size,) = _LENGTH.unpack_from(view, start)
    start += _LENGTH.size
    explanation = bytes(view[start : start + size])
    return DecisionMessage(header, explanation, bytes(view[start + size :]))


@dataclass(frozen=True)
class PreparedDecision:
    """A decision's rows and audit event, built and hashed, ready for a transaction."""

    id: str
    row: dict[str, Any]
    images: list[dict[str, Any]]
    event: PendingEvent
    explanation: dict[str, Any]  # its DecisionExplanation row (shared: inserted if new)
    request: dict[str, Any]  # its DecisionRequest row (shared: inserted if new)


def prepare_message(message: DecisionMessage) -> PreparedDecision:
    """The rows and the audit event of a decision given as ``to_message`` data."""
    header = message.header
    at = datetime.fromisoformat(header["at"])
    review = jsoncodec.loads(message.review)
    request = review["request"] if isinstance(review, dict) else None
    if not isinstance(request, dict):
        raise ValueError("the review carries no request object")
    stored_request = without_managed_fields(request)
    # Hashed as the whole request, stored as its shared part and its own values.
    request_sha256 = hashlib.sha256(canonical_bytes(stored_request)).hexdigest()
    request_template, request_own = split_request(stored_request, header["uid"])
    request_key = hashlib.sha256(request_template).hexdigest()
    entries = header["images"]
    images = [{k: v for k, v in entry.items() if k != "policies"} for entry in entries]
    shared = split_explanation(
        message.explanation, header["id"], header["uid"], time_text(at), header["name"]
    )
    body = explanation_body(shared, images, header["reasons"])
    explanation_key = hashlib.sha256(body).hexdigest()
    row: dict[str, Any] = {
        **{key: header[key] for key in _ROW_FIELDS},
        "created_at": at,
        "explanation_key": explanation_key,
        "request_key": request_key,
        "request_own": request_own,
        "request_sha256": request_sha256,
    }
    payload = {
        **{key: row[key] for key in _EVENT_FIELDS},
        "decision": row["id"],
        "images": [{"image": i["image"], "digest": i["digest"]} for i in images],
        "break_glass": header["break_glass"],
        "explanation_sha256": hashlib.sha256(message.explanation).hexdigest(),
    }
    event_type = BREAK_GLASS_EVENT if header["break_glass"] else DECISION_EVENT
    actor = (row["user"] or "system:anonymous")[:_ACTOR_LIMIT]
    return PreparedDecision(
        row["id"],
        row,
        _image_index_rows(row["id"], at, entries),
        pending_event(event_type, actor, payload),
        {
            "sha256": explanation_key,
            # Written once, here: stored as these bytes, and hashed as them.
            "explanation": RawJSON(shared.decode()),
            "images": images,
            "reasons": header["reasons"],
        },
        {"sha256": request_key, "request": RawJSON(request_template.decode())},
    )


def _image_index_rows(
    decision_id: str, at: datetime, entries: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The decision's ``admission_decision_images`` rows. The digest is parsed from the image
    when the engine did not run (an excluded namespace), so "where did this digest run" also
    finds admissions that policy never looked at."""
    rows = []
    for entry in entries:
        try:
            ref = parse_image(entry["image"])
            repository, digest = ref.name, ref.digest_string
        except ValueError:
            repository, digest = None, None
        names = entry["policies"]
        rows.append(
            {
                "decision_id": decision_id,
                "created_at": at,
                "image": entry["image"],
                "repository": repository,
                "digest": entry["digest"] or digest,
                "allowed": entry["allowed"],
                "policies": f" {' '.join(names)} " if names else "",
            }
        )
    return rows


def prepare(record: DecisionRecord) -> PreparedDecision:
    return prepare_message(to_message(record))


def write_batch(
    db: Database,
    decisions: list[PreparedDecision],
    write: Callable[[Database, list[PreparedDecision]], None] | None = None,
) -> dict[str, Exception | None]:
    """Write ``decisions`` in one transaction; if that fails, each in a transaction of its own,
    so that a decision the database refuses fails alone. Each decision's error (None: committed).
    """
    write = write or write_prepared
    if not decisions:
        return {}
    try:
        write(db, decisions)
        return {d.id: None for d in decisions}
    except Exception as exc:
        if len(decisions) == 1:
            return {decisions[0].id: exc}
        log.warning(
            "a batch of %d decisions failed (%s); recording one by one", len(decisions), exc
        )
    outcomes: dict[str, Exception | None] = {}
    for one in decisions:
        try:
            write(db, [one])
            outcomes[one.id] = None
        except Exception as exc:
            outcomes[one.id] = exc
    return outcomes


def write_prepared(db: Database, decisions: list[PreparedDecision]) -> None:
    with db.session() as session:
        # The decisions first, the events last: the audit log's lock (taken by append_events,
        # held to the commit) then covers only the events' statements. Every admission takes
        # that lock, so its hold time is what bounds decisions per second. Core inserts: the
        # ORM's unit of work would cost more than the rows.
        connection = session.connection()
        _insert_shared(connection, _EXPLANATIONS, [d.explanation for d in decisions])
        _insert_shared(connection, _REQUESTS, [d.request for d in decisions])
        connection.execute(insert(_DECISIONS), [d.row for d in decisions])
        images = [image for d in decisions for image in d.images]
        if images:
            connection.execute(insert(_IMAGES), images)
        append_event_rows(session, [d.event for d in decisions])


def _insert_shared(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Each document not stored yet, once: most decisions repeat one already stored."""
    unique = list({row["sha256"]: row for row in rows}.values())
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table).on_conflict_do_nothing(index_elements=["sha256"])
    connection.execute(statement, unique)
