"""The per-process cache of image decisions, and what invalidates it.

An entry is one image's evaluation, keyed by (image reference as written, namespace, policy-set
hash) within one attestation index version. The reference is the whole string, not only its
digest: policies select images by name and CEL conditions read the reference, so two names for
one digest can be judged differently.

Invalidation: a single database row, ``attestation_index_version``, is bumped by every
transaction that adds or revokes attestations (``attestations_changed``). Each process reads it
at most every ``max_age`` seconds (``IndexVersionReader``; PROVENANT_ADMISSION_INDEX_MAX_AGE,
0.25 s) and at once after a change committed through itself. That is an equivalent of
LISTEN/NOTIFY with no moving parts: nothing is lost when a connection drops, it works the same
for several processes sharing one SQLite file, and the bound holds by construction, since a
value older than ``max_age`` is never used (the decision reads again instead). A revocation
is acknowledged only ``max_age`` after it committed, so that once acknowledged, no replica
anywhere can still admit on what it revoked. A policy reload changes the policy-set hash (so
old entries no longer match) and clears the cache too.
A time-to-live bounds what the key cannot see: the clock (exemption and layout expiry).
"""

from __future__ import annotations

import asyncio
import math
import secrets
import threading
import time
import weakref

import anyio.to_thread
from sqlalchemy import Connection, Engine, event, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.admission.models import AttestationIndexVersion
from app.policy.results import ImageResult

_VERSION = AttestationIndexVersion
_PENDING = "provenant.admission.index_changed"
_BUMPED = "provenant.admission.index_bumped"

CacheKey = tuple[str, str | None, str]  # (image, namespace, policy-set hash)


def attestations_changed(session: Session) -> None:
    """Mark the attestation index as changed by the caller's transaction.

    Call it in any transaction that stores, revokes or deletes attestations. The version is
    bumped just before that transaction commits, so the change and the bump become visible
    together: once the caller has returned (an upload answered, a revocation acknowledged), no
    decision anywhere can use a cached result from before it. Bumping at commit time also
    makes every writer take the audit log's lock (``record_event``, in the body) before this
    row's, so writers cannot deadlock whatever order their code calls the two in.
    """
    session.info[_PENDING] = True


# Registered once for every session (a flag check per commit), not per call: listeners added
# to a session on each upload cost as much as the bump itself.
@event.listens_for(Session, "before_commit")
def _bump_before_commit(session: Session) -> None:
    if session.info.pop(_PENDING, None):
        bump_index_version(session)
        session.info[_BUMPED] = True


@event.listens_for(Session, "after_commit")
def _expire_after_commit(session: Session) -> None:
    # This process's own decisions see the change at once, not after max_age.
    if session.info.pop(_BUMPED, None):
        expire_index_readers()


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    # A rolled-back transaction must not leave its flags for the session's next one.
    session.info.pop(_PENDING, None)
    session.info.pop(_BUMPED, None)


_VERSION_TABLE = _VERSION.__table__
# Built once: building the statement cost more than running it, on every upload.
_BUMP = (
    update(_VERSION_TABLE)
    .where(_VERSION_TABLE.c.id == 1)
    .values(version=_VERSION_TABLE.c.version + 1)
)


def bump_index_version(session: Session) -> None:
    table, bump = _VERSION_TABLE, _BUMP
    connection = session.connection()  # Core: no ORM statement handling on every upload
    if connection.execute(bump).rowcount:
        return
    # The row is gone (a truncated table): start from a random value, so no process can mistake
    # the new count for one it cached under before.
    row = {"id": 1, "version": secrets.randbits(48) | 1}
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    connection.execute(insert(table).values(row).on_conflict_do_nothing())
    connection.execute(bump)


def read_index_version(session: Session | Connection) -> int:
    """The current version. A missing row reads as 0, which a recreated row (random start)
    never equals, so entries cached meanwhile cannot outlive the next change."""
    value = session.scalar(select(_VERSION.version).where(_VERSION.id == 1))
    return 0 if value is None else int(value)


def current_index_version(engine: Engine) -> int:
    """``read_index_version`` in one round trip: a single read needs no transaction, and every
    admission pays for this one."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        return read_index_version(connection)


_READERS: weakref.WeakSet[IndexVersionReader] = weakref.WeakSet()


def expire_index_readers() -> None:
    """A change was committed for this process by another one (an ingest worker): this
    process's decisions must see it at once, as if it had committed it itself."""
    for reader in list(_READERS):
        reader.expire()


class IndexVersionReader:
    """The index version as this process last read it, trusted for ``max_age`` seconds.

    Every admission needs the version; reading it each time cost a database round trip per
    decision. A value is used only while younger than ``max_age`` (measured from when its read
    began), and a change committed in this process expires it at once.
    """

    def __init__(self, engine: Engine, max_age: float) -> None:
        self.engine = engine
        self.max_age = max_age
        # (version, when its read began), replaced whole so readers never see half of it
        self._state: tuple[int, float] = (0, -math.inf)
        self._generation = 0  # bumped by expire(): a read that began before it is not kept
        self._lock = threading.Lock()
        self._refreshing: asyncio.Future[int] | None = None
        _READERS.add(self)

    def fresh(self) -> int | None:
        """The version, if one read recently enough; else None (call ``read``)."""
        value, read_at = self._state
        if time.monotonic() - read_at < self.max_age:
            return value
        return None

    def read(self) -> int:
        generation = self._generation
        started = time.monotonic()
        value = current_index_version(self.engine)
        with self._lock:
            if generation == self._generation and started > self._state[1]:
                self._state = (value, started)
        return value

    def current(self) -> int:
        value = self.fresh()
        return self.read() if value is None else value

    async def refresh(self) -> None:
        """``read`` in a worker thread, once for every decision of this event loop that finds
        the version stale at the same moment (else each would take a thread and a connection)."""
        task = self._refreshing
        if task is None or task.done():
            task = self._refreshing = asyncio.ensure_future(anyio.to_thread.run_sync(self.read))
        await asyncio.shield(task)

    def expire(self) -> None:
        with self._lock:
            self._generation += 1
            self._state = (0, -math.inf)


def cacheable(result: ImageResult) -> bool:
    """Only evaluations that read stored attestations are worth keeping, and only definite ones:
    excluded, exempted, tag-only and unselected images cost nothing to judge again (and an
    exemption's expiry must be seen at once), and an error may be transient."""
    return (
        result.digest is not None
        and bool(result.policies)
        and all(p.status != "error" for p in result.policies)
    )


class DecisionCache:
    """Thread-safe; holds the entries of one index version at a time."""

    def __init__(self, ttl: float, max_entries: int = 20_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        self._version: int | None = None
        self._entries: dict[tuple[int, CacheKey], tuple[float, ImageResult]] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.ttl > 0

    def get(self, version: int | None, key: CacheKey) -> ImageResult | None:
        if not self.enabled or version is None:
            self.misses += 1
            return None
        # The version is part of the key, not only a filter: a put racing this get can switch
        # the cache to another version, and its entries must never answer for this one.
        entry = self._entries.get((version, key))
        if entry is None or entry[0] < time.monotonic():
            self.misses += 1
            return None
        self.hits += 1
        return entry[1]

    def put(self, version: int | None, key: CacheKey, result: ImageResult) -> None:
        if not self.enabled or version is None or not cacheable(result):
            return
        with self._lock:
            if version != self._version:
                # A decision that read an older version may still land here after a newer one:
                # it costs the newer entries, never correctness (get wants the exact version).
                self._entries.clear()
                self._version = version
            if len(self._entries) >= self.max_entries:
                self._entries.clear()  # rare and cheap; an LRU's bookkeeping is not
            self._entries[(version, key)] = (time.monotonic() + self.ttl, result)

    def clear(self, *_args: object) -> None:
        """Drop everything (a policy reload calls this with the new set)."""
        with self._lock:
            self._entries.clear()
            self._version = None

    def __len__(self) -> int:
        return len(self._entries)
