"""Recording a decision: its row and its audit event, in one transaction.

The audit event is small (who, what, outcome, images) and carries the SHA-256 of the stored
request and explanation, so the large JSON columns are covered by the tamper-evident log too.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert

from app.admission.extract import Extraction
from app.admission.models import Decision, DecisionImage
from app.admission.schemas import AdmissionRequest
from app.admission.verdicts import Verdict
from app.audit.service import record_event
from app.db import Database
from app.policy.matching import parse_image

DECISION_EVENT = "admission.decision"
BREAK_GLASS_EVENT = "admission.break_glass"
_ACTOR_LIMIT = 200  # audit_events.actor
_EVENT_FIELDS = (
    "uid", "namespace", "kind", "name", "operation", "user", "caller", "allowed", "outcome",
    "dry_run", "policy_hash", "request_sha256",
)  # fmt: skip


def new_decision_id() -> str:
    """A UUID in the version 7 layout (48-bit milliseconds, then randomness): time-ordered, so
    PostgreSQL's index grows at one end, and unguessable enough to paste into a ticket."""
    millis = time.time_ns() // 1_000_000
    rand_a, rand_b = secrets.randbits(12), secrets.randbits(62)
    value = (millis & (2**48 - 1)) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    return str(uuid.UUID(int=value))


def canonical_sha256(value: Any) -> str:
    """Key order and spacing fixed, so the hash can be recomputed from what the database
    returns (JSONB reorders keys)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


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
    raw_request: dict[str, Any]
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
            }
        )
    return rows


def image_index_rows(record: DecisionRecord, images: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The decision's ``admission_decision_images`` rows. The digest is parsed from the image
    when the engine did not run (an excluded namespace), so "where did this digest run" also
    finds admissions that policy never looked at."""
    policies: dict[str, list[str]] = {}
    if record.verdict.evaluation is not None:
        policies = {i.image: [p.name for p in i.policies] for i in record.verdict.evaluation.images}
    rows = []
    for entry in images:
        try:
            ref = parse_image(entry["image"])
            repository, digest = ref.name, ref.digest_string
        except ValueError:
            repository, digest = None, None
        names = policies.get(entry["image"], [])
        rows.append(
            {
                "decision_id": record.id,
                "created_at": record.at,
                "image": entry["image"],
                "repository": repository,
                "digest": entry["digest"] or digest,
                "allowed": entry["allowed"],
                "policies": f" {' '.join(names)} " if names else "",
            }
        )
    return rows


def save(db: Database, record: DecisionRecord) -> None:
    stored_request = without_managed_fields(record.raw_request)
    explanation = {**record.verdict.explanation(), "response": record.response}
    gvk = record.request.kind
    images = images_of(record)
    row: dict[str, Any] = {
        "id": record.id,
        "created_at": record.at,
        "uid": record.request.uid,
        "namespace": record.namespace,
        "kind": "/".join(p for p in (gvk.group, gvk.version, gvk.kind) if p),
        "name": record.name,
        "sub_resource": record.request.subResource,
        "operation": record.request.operation,
        "user": record.request.userInfo.username,
        "caller": record.caller,
        "images": images,
        "allowed": record.verdict.allowed,
        "outcome": record.verdict.outcome,
        "reasons": record.verdict.reasons,
        "explanation": explanation,
        "policy_hash": record.policy_hash,
        "dry_run": bool(record.request.dryRun),
        "request": stored_request,
        "request_sha256": canonical_sha256(stored_request),
    }
    payload = {
        **{key: row[key] for key in _EVENT_FIELDS},
        "decision": record.id,
        "images": [{"image": i["image"], "digest": i["digest"]} for i in images],
        "break_glass": record.verdict.break_glass,
        "explanation_sha256": canonical_sha256(explanation),
    }
    event_type = BREAK_GLASS_EVENT if record.verdict.break_glass else DECISION_EVENT
    actor = (row["user"] or "system:anonymous")[:_ACTOR_LIMIT]
    with db.session() as session:
        # The decision first, the event last: the audit log's lock (taken by record_event, held
        # to the commit) then covers two statements instead of four. Every admission takes
        # that lock, so its hold time is what bounds decisions per second. A bulk insert: the
        # ORM's unit of work would cost more than the row.
        session.execute(insert(Decision), [row])
        if images:
            session.execute(insert(DecisionImage), image_index_rows(record, images))
        record_event(session, event_type, actor, payload)
