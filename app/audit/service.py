"""Recording events. Callers pass their own session so an event commits (or not) with its cause."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import rfc8785
from sqlalchemy.orm import Session

from app.audit.models import AuditEvent


def payload_hash(payload: dict[str, Any]) -> str:
    return hashlib.sha256(rfc8785.dumps(payload)).hexdigest()


def record_event(session: Session, type_: str, actor: str, payload: dict[str, Any]) -> AuditEvent:
    event = AuditEvent(
        created_at=datetime.now(UTC),
        type=type_,
        actor=actor,
        payload=payload,
        payload_hash=payload_hash(payload),
    )
    session.add(event)
    return event
