"""The per-process cache of image decisions, and what invalidates it.

An entry is one image's evaluation, keyed by (image reference as written, namespace, policy-set
hash) within one attestation index version. The reference is the whole string, not only its
digest: policies select images by name and CEL conditions read the reference, so two names for
one digest can be judged differently.

Invalidation: a single database row, ``attestation_index_version``, is bumped by every
transaction that adds or revokes attestations (``attestations_changed``), and read by every
decision before it looks at the cache. That is an equivalent of LISTEN/NOTIFY with a stronger
guarantee and no moving parts: a change is visible to every replica's next decision the moment
its transaction commits (not within a delivery delay), nothing is lost when a listener
connection drops, and it works the same for several processes sharing one SQLite file. It costs
one primary-key read per decision, next to the write every decision makes anyway. A policy
reload changes the policy-set hash (so old entries no longer match) and clears the cache too.
A time-to-live bounds what the key cannot see: the clock (exemption and layout expiry).
"""

from __future__ import annotations

import secrets
import threading
import time

from sqlalchemy import Connection, Engine, event, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.admission.models import AttestationIndexVersion
from app.policy.results import ImageResult

_VERSION = AttestationIndexVersion
_PENDING = "provenant.admission.index_changed"

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
    if session.info.get(_PENDING):
        return
    session.info[_PENDING] = True
    event.listen(session, "before_commit", _bump_before_commit, once=True)
    # A rolled-back transaction must not leave the flag set for the session's next one.
    event.listen(session, "after_rollback", _forget, once=True)


def _bump_before_commit(session: Session) -> None:
    # A listener left over from a rolled-back transaction finds no flag and does nothing.
    if session.info.pop(_PENDING, None):
        bump_index_version(session)


def _forget(session: Session) -> None:
    session.info.pop(_PENDING, None)


def bump_index_version(session: Session) -> None:
    bump = (
        update(_VERSION)
        .where(_VERSION.id == 1)
        .values(version=_VERSION.version + 1)
        .execution_options(synchronize_session=False)
    )
    if session.execute(bump).rowcount:  # type: ignore[attr-defined]
        return
    # The row is gone (a truncated table): start from a random value, so no process can mistake
    # the new count for one it cached under before.
    row = {"id": 1, "version": secrets.randbits(48) | 1}
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(insert(_VERSION).values(row).on_conflict_do_nothing())
    session.execute(bump)


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
