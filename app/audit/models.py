"""The audit log's tables: events (the Merkle leaves), the log head, cached subtrees, checkpoints.

Only ``audit_events`` is authoritative. ``audit_log_head`` exists to serialize appends (its one
row is the lock every appender takes); ``audit_merkle_nodes`` is a cache that can be deleted at
any time; ``audit_checkpoints`` keeps every signed checkpoint, which is what makes a rewrite of
history detectable by anyone holding the public key.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Integer, SmallInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, BigIdType, JsonType, UtcDateTime


class AuditEvent(Base):
    __tablename__ = "audit_events"

    # 0-based and equal to the Merkle leaf index. Assigned by record_event under the head lock,
    # never by the database: a sequence/identity would leave gaps on rollback.
    seq: Mapped[int] = mapped_column(BigIdType, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    type: Mapped[str] = mapped_column(String(64), index=True)
    actor: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(JsonType)
    payload_hash: Mapped[str] = mapped_column(String(64))  # sha256 of the RFC 8785 JSON payload
    leaf_hash: Mapped[str] = mapped_column(String(64))  # RFC 6962 leaf hash, see docs/audit.md


class AuditLogHead(Base):
    """One row: the number of events. Appenders lock it, so sequence numbers never fork."""

    __tablename__ = "audit_log_head"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    size: Mapped[int] = mapped_column(BigInteger)


class AuditMerkleNode(Base):
    """Hash of the complete subtree of 2**level leaves starting at leaf idx * 2**level."""

    __tablename__ = "audit_merkle_nodes"

    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(64))


class AuditCheckpoint(Base):
    """A signed checkpoint. ``note`` is authoritative; the other columns are for lookups."""

    __tablename__ = "audit_checkpoints"

    tree_size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root_hash: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
