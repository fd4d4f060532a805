"""Recording events, and the log's read side: checkpoints, proofs, queries, export, verify.

Callers record events with their own session, so an event commits (or rolls back) with its
cause. Appends are serialized by the one row of ``audit_log_head``: ``record_event`` increments
it first, which takes that row's lock on PostgreSQL (held to the end of the caller's transaction)
and the database write lock on SQLite. The next appender can only read the head after this
transaction has committed or rolled back, so sequence numbers have no gaps, forks or duplicates,
whatever the number of processes. Callers should record their event late in the transaction:
the lock is held from here to the commit.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from app.audit import keys, leaf
from app.audit.checkpoint import Checkpoint, CheckpointError, verify_note
from app.audit.leaf import EventRecord, format_time
from app.audit.models import AuditCheckpoint, AuditEvent, AuditLogHead, AuditMerkleNode
from app.audit.tree import TreeReader, insert_ignoring_conflicts, tree_size
from app.audit.verify import LogVerifier, Report
from app.db import Database
from app.settings import Settings

log = logging.getLogger("provenant.audit")

_HEAD = AuditLogHead.__table__
_EXPORT_BATCH = 1000
# Bounded so a forged cursor cannot overflow a BIGINT parameter (a 500 instead of a 400).
_CURSOR = re.compile(r"^seq:([0-9]{1,15})$")


# Recording -----------------------------------------------------------------------------------


def payload_hash(payload: dict[str, Any]) -> str:
    return leaf.payload_hash(payload)


def record_event(session: Session, type_: str, actor: str, payload: dict[str, Any]) -> AuditEvent:
    """Append an event in the caller's transaction (see the module docstring for the locking)."""
    return append_events(session, [pending_event(type_, actor, payload)])[0]


@dataclass(frozen=True)
class PendingEvent:
    """An event checked and hashed, waiting for its sequence number."""

    type: str
    actor: str
    payload: dict[str, Any]
    payload_hash: str


def pending_event(type_: str, actor: str, payload: dict[str, Any]) -> PendingEvent:
    """Check and hash an event before any lock is taken: a bad payload fails without waiting,
    and batch writers can do this work outside their transaction."""
    normalized, p_hash = leaf.normalized_with_hash(payload)
    return PendingEvent(type_, actor, normalized, p_hash)


def append_events(session: Session, events: Sequence[PendingEvent]) -> list[AuditEvent]:
    """Append prepared events, in order, in the caller's transaction: one claim of the head row
    for all of them, so a batch of decisions takes the log's lock once."""
    return [AuditEvent(**row) for row in append_event_rows(session, events)]  # transient


def append_event_rows(session: Session, events: Sequence[PendingEvent]) -> list[dict[str, Any]]:
    """``append_events`` for writers that do not read the events back (the decision recorder):
    the inserted rows as plain dicts."""
    if not events:
        return []
    first = _claim_seqs(session, len(events))
    # The time is taken after the lock, so time never goes backwards along the sequence (within
    # one host's clock).
    created_at = datetime.now(UTC)
    time = format_time(created_at)
    rows = []
    for offset, event in enumerate(events):
        seq = first + offset
        leaf_hash = leaf.leaf_hash(seq, time, event.type, event.actor, event.payload_hash)
        rows.append(
            {
                "seq": seq,
                "created_at": created_at,
                "type": event.type,
                "actor": event.actor,
                "payload": event.payload,
                "payload_hash": event.payload_hash,
                "leaf_hash": leaf_hash.hex(),
            }
        )
    # A Core insert: the ORM's unit of work at commit would cost more than the rows, and every
    # append holds the log's lock until that commit.
    session.connection().execute(_INSERT_EVENTS, rows)
    return rows


# Built once: building these statements cost more than running them, on every append.
_INSERT_EVENTS = insert(AuditEvent.__table__)
_CLAIM = (
    update(_HEAD)
    .where(_HEAD.c.id == 1)
    .values(size=_HEAD.c.size + bindparam("count", type_=_HEAD.c.size.type))
    .returning(_HEAD.c.size)
)


def _claim_seqs(session: Session, count: int) -> int:
    """The first of ``count`` consecutive sequence numbers, taken from the head row."""
    # Core, on the session's connection: the ORM's statement handling is pure overhead here.
    size = session.connection().execute(_CLAIM, {"count": count}).scalar_one_or_none()
    if size is None:
        _create_head(session)
        size = session.connection().execute(_CLAIM, {"count": count}).scalar_one()
    return int(size) - count


def _create_head(session: Session) -> None:
    """The head row is gone (a fresh or truncated table): rebuild it from the events."""
    last = session.scalar(select(func.max(AuditEvent.seq)))
    size = 0 if last is None else int(last) + 1
    # Concurrent creators insert the same row; the losers wait on the winner, then skip.
    insert_ignoring_conflicts(session, _HEAD, [{"id": 1, "size": size}])


# Reading -------------------------------------------------------------------------------------


class AuditParamError(ValueError):
    """A request parameter that cannot be answered (the router turns it into a 400)."""


@dataclass(frozen=True)
class SignedCheckpoint:
    tree_size: int
    root_hash: str
    note: str
    created_at: datetime

    @classmethod
    def from_row(cls, row: AuditCheckpoint) -> SignedCheckpoint:
        created = row.created_at
        if created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        return cls(row.tree_size, row.root_hash, row.note, created)


def event_record(row: AuditEvent) -> EventRecord:
    return EventRecord(
        seq=row.seq,
        time=format_time(row.created_at),
        type=row.type,
        actor=row.actor,
        payload=row.payload,
        payload_hash=row.payload_hash,
        leaf_hash=row.leaf_hash,
    )


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"seq:{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, binascii.Error) as exc:
        raise AuditParamError("cursor is not one this server issued") from exc
    match = _CURSOR.match(text)
    if match is None:
        raise AuditParamError("cursor is not one this server issued")
    return int(match.group(1))


class AuditLog:
    """The signing side of the log, shared by the API and the periodic checkpoint task."""

    def __init__(self, db: Database, private_key: Ed25519PrivateKey, origin: str) -> None:
        self.db = db
        self.origin = origin
        self._key = private_key
        self.public_key: Ed25519PublicKey = private_key.public_key()

    @classmethod
    def from_settings(cls, db: Database, settings: Settings) -> AuditLog:
        return cls(db, keys.load_or_create(settings.audit_key_file), settings.audit_origin)

    # Keys and checkpoints --------------------------------------------------------------------

    def public_key_info(self) -> dict[str, str]:
        return {
            "algorithm": "ed25519",
            "origin": self.origin,
            "key_hash": keys.key_hash(self.origin, self.public_key).hex(),
            "public_key_pem": keys.public_pem(self.public_key),
            "verifier_key": keys.verifier_key(self.origin, self.public_key),
        }

    def latest_checkpoint(self) -> SignedCheckpoint | None:
        with self.db.session() as session:
            row = session.scalar(
                select(AuditCheckpoint).order_by(AuditCheckpoint.tree_size.desc()).limit(1)
            )
            return SignedCheckpoint.from_row(row) if row else None

    def checkpoint(self, *, fresh: bool = False) -> SignedCheckpoint:
        """The latest stored checkpoint, or one signed now over the current tree."""
        if not fresh:
            latest = self.latest_checkpoint()
            if latest is not None:
                return latest
        return self.make_checkpoint()

    def make_checkpoint(self) -> SignedCheckpoint:
        """Sign the current tree (once per size: Ed25519 is deterministic, so concurrent signers
        of the same size produce the same note and one row)."""
        with self.db.session() as session:
            size = tree_size(session)
            row = session.get(AuditCheckpoint, size)
            if row is None:
                root = TreeReader(session).root(size)
                note = Checkpoint(self.origin, size, root).sign(self.origin, self._key)
                insert_ignoring_conflicts(
                    session,
                    AuditCheckpoint.__table__,
                    [
                        {
                            "tree_size": size,
                            "root_hash": root.hex(),
                            "note": note,
                            "created_at": datetime.now(UTC),
                        }
                    ],
                )
                row = session.get(AuditCheckpoint, size)
            assert row is not None
            return SignedCheckpoint.from_row(row)

    # Proofs ----------------------------------------------------------------------------------

    def inclusion(self, seq: int, size: int | None) -> dict[str, Any]:
        with self.db.session() as session:
            current = tree_size(session)
            size = current if size is None else size
            if size > current:
                raise AuditParamError(f"tree_size {size} is larger than the log ({current})")
            if not 0 <= seq < size:
                raise AuditParamError(f"seq {seq} is not in a tree of size {size}")
            reader = TreeReader(session)
            proof = reader.inclusion_proof(seq, size)
            return {
                "seq": seq,
                "tree_size": size,
                "leaf_hash": reader.leaf_hash(seq).hex(),
                "root_hash": reader.root(size).hex(),
                "hashes": [h.hex() for h in proof],
            }

    def consistency(self, old: int, new: int | None) -> dict[str, Any]:
        with self.db.session() as session:
            current = tree_size(session)
            new = current if new is None else new
            if new > current:
                raise AuditParamError(f"tree size {new} is larger than the log ({current})")
            if old > new:
                raise AuditParamError(f"from ({old}) must not be larger than to ({new})")
            reader = TreeReader(session)
            proof = reader.consistency_proof(old, new)
            return {
                "from": old,
                "to": new,
                "from_root_hash": reader.root(old).hex(),
                "to_root_hash": reader.root(new).hex(),
                "hashes": [h.hex() for h in proof],
            }

    # Queries ---------------------------------------------------------------------------------

    def events(
        self,
        *,
        type_: str | None = None,
        since: datetime | None = None,
        after_seq: int | None = None,
        limit: int = 100,
    ) -> list[EventRecord]:
        """Events in log order. Pages keyed on seq are stable under appends: a committed prefix
        of the log never changes, and appends only ever add larger sequence numbers."""
        stmt = select(AuditEvent).order_by(AuditEvent.seq).limit(limit)
        if type_:
            stmt = stmt.where(AuditEvent.type == type_)
        if since is not None:
            stmt = stmt.where(AuditEvent.created_at >= since)
        if after_seq is not None:
            stmt = stmt.where(AuditEvent.seq > after_seq)
        with self.db.session() as session:
            return [event_record(row) for row in session.scalars(stmt)]

    def export(self, checkpoint: SignedCheckpoint) -> Iterator[str]:
        """JSONL: every event of the checkpoint's tree, then the checkpoint as the last line.

        The caller signs the checkpoint first (``make_checkpoint``) and only events below its
        size are sent, so events appended during a long export cannot make it inconsistent.
        """
        after = -1
        while after + 1 < checkpoint.tree_size:
            with self.db.session() as session:
                rows = session.scalars(
                    select(AuditEvent)
                    .where(AuditEvent.seq > after, AuditEvent.seq < checkpoint.tree_size)
                    .order_by(AuditEvent.seq)
                    .limit(_EXPORT_BATCH)
                ).all()
                records = [event_record(row) for row in rows]
            if not records:
                break  # rows are missing: the verifier will say which
            for record in records:
                yield _jsonl(record.to_json())
            after = records[-1].seq
        yield _jsonl(
            {
                "checkpoint": checkpoint.note,
                "tree_size": checkpoint.tree_size,
                "root_hash": checkpoint.root_hash,
            }
        )

    # Verification ----------------------------------------------------------------------------

    def verify(self) -> Report:
        """Recompute every hash and the tree, and check them against every signed checkpoint."""
        with self.db.session() as session:
            trusted, bad = self._verified_checkpoints(session)
            cached = {
                (level, idx): bytes.fromhex(value)
                for level, idx, value in session.execute(
                    select(AuditMerkleNode.level, AuditMerkleNode.idx, AuditMerkleNode.hash)
                )
            }
            head_before = tree_size(session)
            verifier = LogVerifier(trusted, cached)
            stmt = select(AuditEvent).order_by(AuditEvent.seq).execution_options(yield_per=2000)
            for row in session.scalars(stmt):
                if verifier.add(event_record(row)) is not None:
                    break
            head_after = tree_size(session)
        # Appends may land while we read: an honest snapshot holds at least head_before events
        # and at most head_after.
        if verifier.size < head_before:
            expected = head_before
        elif verifier.size > head_after:
            expected = head_after
        else:
            expected = verifier.size
        problem = verifier.finish(expected)
        return Report(
            ok=problem is None and not bad and not verifier.cache_problems,
            tree_size=verifier.size,
            root_hash=verifier.root().hex() if problem is None else None,
            events_checked=verifier.size,
            checkpoints_checked=verifier.checkpoints_matched,
            first_bad_seq=problem.seq if problem else None,
            reason=problem.reason if problem else None,
            bad_checkpoints=bad,
            cache_problems=verifier.cache_problems,
        )

    def _verified_checkpoints(
        self, session: Session
    ) -> tuple[list[tuple[int, bytes]], list[dict[str, Any]]]:
        trusted: list[tuple[int, bytes]] = []
        bad: list[dict[str, Any]] = []
        for row in session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.tree_size)):
            try:
                checkpoint = verify_note(row.note, self.public_key, self.origin)
            except CheckpointError as exc:
                bad.append({"tree_size": row.tree_size, "reason": f"forged or damaged: {exc}"})
                continue
            if checkpoint.tree_size != row.tree_size or checkpoint.root_hash.hex() != row.root_hash:
                bad.append(
                    {"tree_size": row.tree_size, "reason": "columns disagree with the signed note"}
                )
            trusted.append((checkpoint.tree_size, checkpoint.root_hash))
        return trusted, bad


def _jsonl(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n"


# Wiring --------------------------------------------------------------------------------------

_install_lock = threading.Lock()


def audit_log(app_state: Any) -> AuditLog:
    """The app's AuditLog, created on first use if the startup hook did not create it."""
    existing = getattr(app_state, "audit", None)
    if existing is not None:
        return existing
    with _install_lock:
        existing = getattr(app_state, "audit", None)
        if existing is None:
            existing = AuditLog.from_settings(app_state.db, app_state.settings)
            app_state.audit = existing
        return existing
