"""The watcher: inventory from the Pod watch, re-evaluation on every relevant change, findings,
notifications; behind a Lease when several replicas run it.

What triggers which evaluation:

- a Pod appearing, changing image or going (the watch): that Pod's keys;
- an attestation uploaded or revoked, by any process (the attestation index version, one
  primary-key read per ``poll``): the keys running its subjects' digests;
- the policy set, trust roots included (the store's listener; standalone, the directory's hash
  every ``policy_poll``): everything;
- an exemption expiring or entering its warning window (the clock passing one of the policy
  set's instants): everything;
- the schedule (``interval``, hourly by default): everything.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy import or_, select

from app.admission.cache import DecisionCache, current_index_version
from app.admission.service import Admission
from app.attestations.models import Attestation, AttestationSubject
from app.continuous.evaluate import clock_instants, judge
from app.continuous.findings import FindingStore
from app.continuous.inventory import FindingKey, Inventory
from app.db import Database
from app.policy.store import PolicySet, PolicyStore, directory_hash

log = logging.getLogger("provenant.continuous")

# Uploads and revocations are found by their times; the window overlaps the previous look by
# this much, so a transaction that committed late with an earlier timestamp is not missed.
_OVERLAP = timedelta(seconds=30)


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass
class Options:
    cluster: str = "default"
    interval: float = 3600.0  # seconds between scheduled full re-evaluations
    poll: float = 1.0  # seconds between looks at the index version and the clock
    policy_poll: float | None = None  # standalone watcher: reload when the policy dir changes


@dataclass
class Stats:
    evaluations: int = 0
    full: int = 0
    last_full_seconds: float = 0.0
    keys_judged: int = 0
    transitions: int = 0
    last_step_at: float = 0.0


@dataclass
class _Pending:
    full: bool = False
    reason: str = ""
    keys: set[FindingKey] = field(default_factory=set)
    digests: set[str] = field(default_factory=set)


class Evaluator:
    """Collects triggers and turns them into evaluations; ``step`` does one round."""

    def __init__(
        self,
        db: Database,
        policies: PolicyStore,
        inventory: Inventory,
        store: FindingStore,
        *,
        clock: Clock,
        options: Options,
        synced: threading.Event,
        on_transitions: Callable[[], None] = lambda: None,
    ) -> None:
        self.db = db
        self.policies = policies
        self.inventory = inventory
        self.store = store
        self.clock = clock
        self.options = options
        self.synced = synced
        self.on_transitions = on_transitions
        # Its own decision cache: the admission engine's evaluation, cached the same way.
        self.admission = Admission(db, policies, DecisionCache(30.0))
        self.stats = Stats()
        self._pending = _Pending()
        self._cond = threading.Condition()
        self._policy_hash: str | None = None
        self._index_version: int | None = None
        self._index_seen_at = datetime.now(UTC)
        # (attestation id, revoked_at) of the changes inside the overlap already judged
        self._handled: set[tuple[str, datetime | None]] = set()
        self._next_full: datetime | None = None
        self._last_now: datetime | None = None
        self._dir_hash_at = 0.0
        self._dir_hash: str | None = None

    # --- triggers (any thread) -----------------------------------------------------------

    def keys_changed(self, keys: set[FindingKey]) -> None:
        with self._cond:
            self._pending.keys |= keys
            self._cond.notify()

    def digests_changed(self, digests: Iterable[str]) -> None:
        with self._cond:
            self._pending.digests |= set(digests)
            self._cond.notify()

    def full(self, reason: str) -> None:
        with self._cond:
            self._pending.full = True
            self._pending.reason = reason
            self._cond.notify()

    def policies_reloaded(self, _policy_set: PolicySet | None = None) -> None:
        self.full("policy set reloaded")

    # --- the loop ------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            with self._cond:
                pending = self._pending
                # Before the first list completes there is nothing to judge: wait, don't spin.
                if not (self.synced.is_set() and (pending.full or pending.keys or pending.digests)):
                    self._cond.wait(self.options.poll)
            if stop.is_set():
                return
            try:
                self.step()
            except Exception:
                log.exception("continuous: evaluation round failed")
                stop.wait(self.options.poll)

    def step(self) -> int:
        """One round: notice what changed, evaluate it, store the findings. Returns the number
        of transitions."""
        policy_set = self._policy_set()
        if policy_set is None or not self.synced.is_set():
            return 0
        now = self.clock.now()
        self._notice(policy_set, now)
        with self._cond:
            pending, self._pending = self._pending, _Pending()
        counts = self.inventory.counts()
        started = time.perf_counter()
        if pending.full:
            keys: set[FindingKey] = set(counts)
            gone = [k for k in self.store.known_keys() if k not in counts]
            self.admission.cache.clear()  # a clock-driven round must not reuse older results
        else:
            keys = {k for k in pending.keys if k in counts}
            if pending.digests:
                keys |= {k for k in counts if k.digest in pending.digests}
            gone = [k for k in pending.keys if k not in counts]
        if not keys and not gone:
            return 0
        judged = judge(self.admission, policy_set, keys, now)
        transitions = self.store.apply(judged, counts, gone, now)
        elapsed = time.perf_counter() - started
        self.stats.evaluations += 1
        self.stats.keys_judged += len(keys)
        self.stats.transitions += len(transitions)
        self.stats.last_step_at = time.monotonic()
        if pending.full:
            self.stats.full += 1
            self.stats.last_full_seconds = elapsed
            log.info(
                "continuous: full re-evaluation (%s): %d findings, %d transitions in %.2fs",
                pending.reason,
                len(keys),
                len(transitions),
                elapsed,
            )
        if transitions:
            self.on_transitions()
        return len(transitions)

    def _policy_set(self) -> PolicySet | None:
        if self.options.policy_poll is not None:
            moment = time.monotonic()
            if moment - self._dir_hash_at >= self.options.policy_poll:
                self._dir_hash_at = moment
                current = directory_hash(self.policies.directory)
                if self._dir_hash is not None and current != self._dir_hash:
                    self.policies.reload()
                self._dir_hash = current
        return self.policies.active

    def _notice(self, policy_set: PolicySet, now: datetime) -> None:
        """Turn what changed since the last round into pending work."""
        if policy_set.content_hash != self._policy_hash:
            reason = "first evaluation" if self._policy_hash is None else "policy set changed"
            self._policy_hash = policy_set.content_hash
            self.full(reason)
        if self._next_full is None or now >= self._next_full:
            if self._next_full is not None:
                self.full("schedule")
            self._next_full = now + timedelta(seconds=self.options.interval)
        last = self._last_now
        if last is not None and any(last < t <= now for t in clock_instants(policy_set)):
            self.full("an exemption expired or entered its warning window")
        self._last_now = now
        version = current_index_version(self.db.engine)
        if self._index_version is not None and version != self._index_version:
            self.digests_changed(self._changed_digests())
        elif self._index_version is None:
            # The first round is a full one: what changed before it is judged there.
            self._index_seen_at = datetime.now(UTC)
            self._changed_digests()
        self._index_version = version

    def _changed_digests(self) -> set[str]:
        """The digests of attestations uploaded or revoked since the last look. The window
        overlaps the previous one, and the changes already handled in it are skipped, so a burst
        of uploads is not judged again at every later change."""
        since = self._index_seen_at - _OVERLAP
        self._index_seen_at = datetime.now(UTC)
        query = (
            select(
                Attestation.id,
                Attestation.revoked_at,
                AttestationSubject.algorithm,
                AttestationSubject.digest,
            )
            .join(Attestation, Attestation.id == AttestationSubject.attestation_id)
            .where(or_(Attestation.uploaded_at >= since, Attestation.revoked_at >= since))
        )
        with self.db.session() as session:
            rows = session.execute(query).all()
        seen = {(a_id, revoked) for a_id, revoked, _, _ in rows}
        fresh = {
            f"{alg}:{hex_}" for a_id, rev, alg, hex_ in rows if (a_id, rev) not in self._handled
        }
        self._handled = seen
        return fresh
