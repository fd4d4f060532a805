"""The Merkle tree over ``audit_events.leaf_hash``, with complete subtrees cached in the database.

A complete, aligned subtree never changes once its last leaf is committed, so its hash is
cached (``audit_merkle_nodes``) from level CACHE_LEVEL (256 leaves) up. A root or a proof then
needs O(log n) cached nodes plus at most a few hundred leaf hashes, whatever the log's size.
The cache is filled lazily by whoever computes a node first (usually the periodic checkpoint)
and can be deleted at any time; /v1/audit/verify recomputes everything without it.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import and_, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from app.audit import merkle
from app.audit.models import AuditEvent, AuditLogHead, AuditMerkleNode

CACHE_LEVEL = 8
_STREAM_BATCH = 4096

NodeKey = tuple[int, int]


class TreeError(RuntimeError):
    """The stored leaves cannot form the requested tree (rows missing: the log was damaged)."""


def tree_size(session: Session) -> int:
    size = session.scalar(select(AuditLogHead.size).where(AuditLogHead.id == 1))
    return int(size or 0)


def insert_ignoring_conflicts(session: Session, table: object, rows: list[dict]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING: concurrent writers produce identical rows here."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    session.execute(insert(table).on_conflict_do_nothing(), rows)  # type: ignore[arg-type]


class TreeReader:
    """Hashes of leaf ranges for one session; remembers nodes for the duration of a request."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._nodes: dict[NodeKey, bytes] = {}
        self._new: dict[NodeKey, bytes] = {}
        self._looked_up: set[NodeKey] = set()  # asked the cache already, found or not

    # Public API ------------------------------------------------------------------------------

    def root(self, size: int) -> bytes:
        return self.range_hash(0, size)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        ranges = merkle.inclusion_ranges(index, size)
        self._prefetch(ranges)
        return [self.range_hash(lo, hi) for lo, hi in ranges]

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        ranges = merkle.consistency_ranges(old, new)
        self._prefetch(ranges)
        return [self.range_hash(lo, hi) for lo, hi in ranges]

    def leaf_hash(self, seq: int) -> bytes:
        value = self.session.scalar(select(AuditEvent.leaf_hash).where(AuditEvent.seq == seq))
        if value is None:
            raise TreeError(f"event {seq} is missing")
        return bytes.fromhex(value)

    def range_hash(self, lo: int, hi: int) -> bytes:
        """MTH(D[lo:hi]) for the ranges RFC 6962's recursion produces."""
        pieces = merkle.complete_subtrees(lo, hi)
        self._prefetch([(lo, hi)])
        small = [(level, idx) for level, idx in pieces if level < CACHE_LEVEL]
        leaves: list[bytes] = []
        start = 0
        if small:
            # For aligned ranges the pieces below the cache level sit together at the right end.
            start = small[0][1] << small[0][0]
            leaves = self._leaves(start, hi)
        hashes = [
            self._node(level, idx)
            if level >= CACHE_LEVEL
            else merkle.root_of(leaves[(idx << level) - start : ((idx + 1) << level) - start])
            for level, idx in pieces
        ]
        self.flush()
        return merkle.fold_right(hashes)

    def flush(self) -> None:
        """Store nodes computed by this reader (in the caller's transaction)."""
        if self._new:
            rows = [
                {"level": lv, "idx": i, "hash": h.hex()} for (lv, i), h in sorted(self._new.items())
            ]
            insert_ignoring_conflicts(self.session, AuditMerkleNode.__table__, rows)
            self._new.clear()

    # Internals -------------------------------------------------------------------------------

    def _prefetch(self, ranges: Iterable[tuple[int, int]]) -> None:
        """One query for every cached node the ranges need."""
        wanted = {
            (level, idx)
            for lo, hi in ranges
            for level, idx in merkle.complete_subtrees(lo, hi)
            if level >= CACHE_LEVEL and (level, idx) not in self._looked_up
        }
        if not wanted:
            return
        self._looked_up |= wanted
        by_level: dict[int, list[int]] = {}
        for level, idx in wanted:
            by_level.setdefault(level, []).append(idx)
        condition = or_(
            *(
                and_(AuditMerkleNode.level == level, AuditMerkleNode.idx.in_(idxs))
                for level, idxs in by_level.items()
            )
        )
        for level, idx, value in self.session.execute(
            select(AuditMerkleNode.level, AuditMerkleNode.idx, AuditMerkleNode.hash).where(
                condition
            )
        ):
            self._nodes[(level, idx)] = bytes.fromhex(value)

    def _node(self, level: int, idx: int) -> bytes:
        key = (level, idx)
        if key not in self._nodes:
            self._build(level, idx)
        return self._nodes[key]

    def _build(self, level: int, idx: int) -> None:
        """Compute a missing node from whatever cached descendants exist, then from leaves."""
        self._load_descendants(level, idx)
        missing_blocks: list[int] = []
        self._plan(level, idx, missing_blocks)
        for start, end in _spans(missing_blocks):
            self._hash_blocks(start, end)
        self._combine(level, idx)

    def _load_descendants(self, level: int, idx: int) -> None:
        if level == CACHE_LEVEL:
            return
        condition = or_(
            *(
                and_(
                    AuditMerkleNode.level == lv,
                    AuditMerkleNode.idx >= idx << (level - lv),
                    AuditMerkleNode.idx < (idx + 1) << (level - lv),
                )
                for lv in range(CACHE_LEVEL, level)
            )
        )
        for lv, i, value in self.session.execute(
            select(AuditMerkleNode.level, AuditMerkleNode.idx, AuditMerkleNode.hash).where(
                condition
            )
        ):
            self._nodes.setdefault((lv, i), bytes.fromhex(value))

    def _plan(self, level: int, idx: int, missing_blocks: list[int]) -> None:
        if (level, idx) in self._nodes:
            return
        if level == CACHE_LEVEL:
            missing_blocks.append(idx)
            return
        self._plan(level - 1, 2 * idx, missing_blocks)
        self._plan(level - 1, 2 * idx + 1, missing_blocks)

    def _combine(self, level: int, idx: int) -> bytes:
        key = (level, idx)
        if key not in self._nodes:
            left = self._combine(level - 1, 2 * idx)
            right = self._combine(level - 1, 2 * idx + 1)
            self._remember(key, merkle.hash_children(left, right))
        return self._nodes[key]

    def _hash_blocks(self, first_block: int, end_block: int) -> None:
        """Stream the leaves of blocks [first, end) once, hashing every complete subtree."""
        base = first_block << CACHE_LEVEL

        def on_node(level: int, offset_idx: int, value: bytes) -> None:
            # Subtrees complete relative to ``base`` are aligned absolutely only when ``base``
            # is a multiple of their size; the others are not tree nodes and are dropped.
            if level >= CACHE_LEVEL and base % (1 << level) == 0:
                self._remember((level, (base >> level) + offset_idx), value)

        compact = merkle.CompactRange(on_node)
        lo, hi = base, end_block << CACHE_LEVEL
        expected = lo
        stmt = (
            select(AuditEvent.seq, AuditEvent.leaf_hash)
            .where(AuditEvent.seq >= lo, AuditEvent.seq < hi)
            .order_by(AuditEvent.seq)
            .execution_options(yield_per=_STREAM_BATCH)
        )
        for seq, value in self.session.execute(stmt):
            if seq != expected:
                raise TreeError(f"event {expected} is missing")
            compact.push(bytes.fromhex(value))
            expected += 1
        if expected != hi:
            raise TreeError(f"event {expected} is missing")

    def _remember(self, key: NodeKey, value: bytes) -> None:
        if key not in self._nodes:
            self._nodes[key] = value
            self._new[key] = value

    def _leaves(self, lo: int, hi: int) -> list[bytes]:
        rows = self.session.execute(
            select(AuditEvent.seq, AuditEvent.leaf_hash)
            .where(AuditEvent.seq >= lo, AuditEvent.seq < hi)
            .order_by(AuditEvent.seq)
        ).all()
        if len(rows) != hi - lo:  # seq is the primary key: fewer rows means some are missing
            present = {seq for seq, _ in rows}
            first_missing = next(s for s in range(lo, hi) if s not in present)
            raise TreeError(f"event {first_missing} is missing")
        return [bytes.fromhex(value) for _, value in rows]


def _spans(blocks: list[int]) -> list[tuple[int, int]]:
    """Contiguous runs of block numbers as [start, end)."""
    out: list[tuple[int, int]] = []
    for block in sorted(blocks):
        if out and out[-1][1] == block:
            out[-1] = (out[-1][0], block + 1)
        else:
            out.append((block, block + 1))
    return out
