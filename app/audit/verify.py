"""Recomputing the log: the one verifier behind GET /v1/audit/verify and `provenant audit verify`.

Events are fed in log order. Each one is checked on its own (position, payload hash, leaf hash:
exact, names the event) and its stored leaf hash goes into a streaming Merkle tree, whose root is
compared with every trusted checkpoint as the stream reaches that checkpoint's size. A rewrite
that also recomputed the row's hashes is only visible there, so it is located to the events
after the last checkpoint that still matched (see docs/audit.md, "What verify can name").
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from app.audit import leaf, merkle
from app.audit.checkpoint import Checkpoint, CheckpointError, verify_note

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
# How far a moved event is looked for (only once, on failure): covers inserting or deleting up
# to this many events in the middle of the log.
MOVE_WINDOW = 1024


@dataclass(frozen=True)
class Problem:
    """The first thing wrong with the log; ``seq`` is None when no event is to blame."""

    seq: int | None
    reason: str


@dataclass
class Report:
    ok: bool
    tree_size: int
    root_hash: str | None
    events_checked: int
    checkpoints_checked: int
    first_bad_seq: int | None = None
    reason: str | None = None
    bad_checkpoints: list[dict[str, Any]] = field(default_factory=list)
    cache_problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "tree_size": self.tree_size,
            "root_hash": self.root_hash,
            "events_checked": self.events_checked,
            "checkpoints_checked": self.checkpoints_checked,
            "first_bad_seq": self.first_bad_seq,
            "reason": self.reason,
            "bad_checkpoints": self.bad_checkpoints,
            "cache_problems": self.cache_problems,
        }


class LogVerifier:
    """Feed events in order with ``add``; call ``finish`` at the end. Stops at the first problem.

    ``checkpoints`` are (tree size, root hash) pairs whose signatures the caller has verified;
    ``cached_nodes`` are the server's subtree cache, checked against the recomputed tree.
    """

    def __init__(
        self,
        checkpoints: Iterable[tuple[int, bytes]] = (),
        cached_nodes: dict[tuple[int, int], bytes] | None = None,
    ) -> None:
        self._checkpoints = sorted(set(checkpoints))
        self._next_checkpoint = 0
        self._trusted_until = 0  # events below this are vouched for by a matching checkpoint
        self._cached = cached_nodes or {}
        # A cached subtree that disagrees: either the events under it changed or the cache did.
        # A later matching checkpoint decides which; until then it is only a suspicion.
        self._suspect: tuple[int, int] | None = None
        self.cache_problems: list[str] = []
        self._tree = merkle.CompactRange(self._check_node)
        self.problem: Problem | None = None
        self.checkpoints_matched = 0
        self._check_checkpoints()

    @property
    def size(self) -> int:
        return self._tree.size

    def root(self) -> bytes:
        return self._tree.root()

    def add(self, event: leaf.EventRecord) -> Problem | None:
        if self.problem is None:
            self.problem = self._add(event)
        return self.problem

    def finish(self, expected_size: int | None = None) -> Problem | None:
        """After the last event: no signed checkpoint may be larger than the log."""
        if self.problem is not None:
            return self.problem
        if self._suspect is not None:
            self.problem = self._suspect_problem()
        elif expected_size is not None and self.size > expected_size:
            self.problem = Problem(
                expected_size,
                f"event {expected_size} is beyond the end of the log "
                f"(size {expected_size}): it was inserted",
            )
        elif expected_size is not None and self.size < expected_size:
            self.problem = Problem(
                self.size,
                f"event {self.size} is missing: the log should have {expected_size} events",
            )
        elif self._next_checkpoint < len(self._checkpoints):
            size = self._checkpoints[self._next_checkpoint][0]
            self.problem = Problem(
                self.size,
                f"a signed checkpoint covers {size} events but only {self.size} remain: "
                f"event {self.size} and later were removed",
            )
        return self.problem

    def check_root(self, size: int, root: bytes) -> Problem | None:
        """Compare a checkpoint learnt only after the events (an export's last line)."""
        if self.problem is None and size == self.size and self.root() != root:
            start = self._trusted_until
            self.problem = Problem(
                start,
                f"events {start}..{size - 1} do not reproduce the signed checkpoint for tree "
                f"size {size}: one of them was altered, inserted, removed or reordered",
            )
        return self.problem

    # Internals -------------------------------------------------------------------------------

    def _add(self, event: leaf.EventRecord) -> Problem | None:
        problem = self._check_event(event)
        if problem is not None:
            # An unresolved suspicion is about earlier events, so it comes first.
            return self._suspect_problem() if self._suspect is not None else problem
        # The stored leaf hash, not the recomputed one, enters the tree: it is what proofs are
        # served from, and the two are equal here anyway.
        self._tree.push(bytes.fromhex(event.leaf_hash))
        return self._check_checkpoints()

    def _check_event(self, event: leaf.EventRecord) -> Problem | None:
        position = self.size
        if event.seq != position:
            if event.seq > position:
                return Problem(position, f"event {position} is missing (next is {event.seq})")
            return Problem(position, f"event at position {position} has seq {event.seq}")
        if not _HEX64.match(event.payload_hash) or not _HEX64.match(event.leaf_hash):
            return Problem(position, f"event {position} has a malformed hash")
        try:
            recomputed_payload = leaf.payload_hash(event.payload)
        except (TypeError, ValueError) as exc:
            return Problem(position, f"event {position} payload cannot be canonicalized: {exc}")
        if recomputed_payload != event.payload_hash:
            return Problem(position, f"event {position} payload does not match its payload hash")
        recomputed_leaf = leaf.leaf_hash(
            event.seq, event.time, event.type, event.actor, event.payload_hash
        )
        if recomputed_leaf.hex() != event.leaf_hash:
            moved_from = _original_seq(event)
            if moved_from is not None:
                # The row's own leaf hash says where it was recorded: whatever now sits at
                # that position is not what was recorded there either.
                return Problem(
                    min(position, moved_from),
                    f"the event at {position} was recorded as event {moved_from}: events "
                    "were inserted, deleted or reordered",
                )
            return Problem(
                position,
                f"event {position} (seq, time, type, actor or payload hash) does not match "
                "its leaf hash",
            )
        return None

    def _check_checkpoints(self) -> Problem | None:
        while (
            self._next_checkpoint < len(self._checkpoints)
            and self._checkpoints[self._next_checkpoint][0] == self.size
        ):
            size, root = self._checkpoints[self._next_checkpoint]
            self._next_checkpoint += 1
            if self.root() != root:
                start = self._trusted_until
                if self._suspect is not None and self._suspect[0] >= start:
                    # The cache narrows the signed checkpoint's range down to one subtree.
                    self.problem = self._suspect_problem(f"signed checkpoint {size} fails too")
                else:
                    self.problem = Problem(
                        start,
                        f"events {start}..{size - 1} do not reproduce the signed checkpoint "
                        f"for tree size {size}: one of them was altered, inserted, removed or "
                        "reordered (with its hashes recomputed)",
                    )
                return self.problem
            if self._suspect is not None:
                start, end = self._suspect
                self.cache_problems.append(
                    f"cached subtree hash for events {start}..{end - 1} is wrong (the events "
                    f"match the signed checkpoint for tree size {size}); delete the cache row"
                )
                self._suspect = None
            self._trusted_until = size
            self.checkpoints_matched += 1
        return None

    def _check_node(self, level: int, idx: int, value: bytes) -> None:
        cached = self._cached.get((level, idx))
        if cached is not None and cached != value and self._suspect is None:
            self._suspect = (idx << level, (idx + 1) << level)

    def _suspect_problem(self, confirmation: str = "") -> Problem:
        assert self._suspect is not None
        start, end = self._suspect
        culprit = f"; {confirmation}" if confirmation else " (or the cache row was altered)"
        return Problem(
            start,
            f"events {start}..{end - 1} do not reproduce the subtree hash recorded when they "
            f"were first hashed: one of them was altered with its hashes recomputed{culprit}",
        )


def _original_seq(event: leaf.EventRecord) -> int | None:
    """The sequence number this row's leaf hash was computed with, if it is nearby."""
    for delta in range(1, MOVE_WINDOW + 1):
        for seq in (event.seq - delta, event.seq + delta):
            if seq >= 0 and (
                leaf.leaf_hash(seq, event.time, event.type, event.actor, event.payload_hash).hex()
                == event.leaf_hash
            ):
                return seq
    return None


# Exports -------------------------------------------------------------------------------------


@dataclass
class ExportResult:
    """What an export proved: ``problem`` is None when every check passed."""

    problem: Problem | None
    events: int
    checkpoint: Checkpoint | None = None
    note: str | None = None
    # A sample of (seq, recomputed leaf hash), for checking a server's inclusion proofs.
    sample: dict[int, bytes] = field(default_factory=dict)


def verify_export(
    lines: Iterable[str],
    public_key: Ed25519PublicKey,
    *,
    origin: str | None = None,
    earlier_note: str | None = None,
    sample_size: int = 0,
    rng: random.Random | None = None,
) -> ExportResult:
    """Check a JSONL export: each event, the final signed checkpoint over all of them, and (with
    ``earlier_note``) that an earlier checkpoint's tree is a prefix of this one."""
    trusted: list[tuple[int, bytes]] = []
    if earlier_note is not None:
        try:
            earlier = verify_note(earlier_note, public_key, origin)
        except CheckpointError as exc:
            return ExportResult(Problem(None, f"the earlier checkpoint does not verify: {exc}"), 0)
        trusted.append((earlier.tree_size, earlier.root_hash))
    verifier = LogVerifier(trusted)
    sampler = _Reservoir(sample_size, rng or random.Random())  # noqa: S311 - not security
    final: dict[str, Any] | None = None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if final is not None:
            return ExportResult(Problem(verifier.size, "lines follow the checkpoint line"), 0)
        try:
            data = json.loads(line)
        except ValueError:
            return ExportResult(Problem(verifier.size, f"line {number} is not JSON"), 0)
        if isinstance(data, dict) and "checkpoint" in data:
            final = data
            continue
        try:
            record = leaf.EventRecord.from_json(data)
        except ValueError as exc:
            return ExportResult(Problem(verifier.size, f"line {number}: {exc}"), verifier.size)
        if verifier.add(record) is not None:
            break
        sampler.offer(record.seq, bytes.fromhex(record.leaf_hash))
    if verifier.problem is not None:
        return ExportResult(verifier.problem, verifier.size)
    if final is None or not isinstance(final.get("checkpoint"), str):
        return ExportResult(
            Problem(None, "the export does not end with a checkpoint line: it was cut short"),
            verifier.size,
        )
    note = final["checkpoint"]
    try:
        checkpoint = verify_note(note, public_key, origin)
    except CheckpointError as exc:
        return ExportResult(Problem(None, f"the export's checkpoint: {exc}"), verifier.size)
    problem = verifier.finish(checkpoint.tree_size) or verifier.check_root(
        checkpoint.tree_size, checkpoint.root_hash
    )
    return ExportResult(problem, verifier.size, checkpoint, note, sampler.items)


class _Reservoir:
    """A uniform sample of k items from a stream of unknown length (Algorithm R), plus the last
    item, which is the one most recently appended and so the most interesting to prove.
    k < 0 keeps everything."""

    def __init__(self, k: int, rng: random.Random) -> None:
        self.k, self.rng, self.seen = k, rng, 0
        self._slots: list[tuple[int, bytes]] = []
        self._last: tuple[int, bytes] | None = None

    def offer(self, key: int, value: bytes) -> None:
        self.seen += 1
        if self.k < 0 or len(self._slots) < self.k:
            self._slots.append((key, value))
        elif self.k > 0:
            slot = self.rng.randrange(self.seen)
            if slot < self.k:
                self._slots[slot] = (key, value)
        if self.k != 0:
            self._last = (key, value)

    @property
    def items(self) -> dict[int, bytes]:
        out = dict(self._slots)
        if self._last is not None:
            out[self._last[0]] = self._last[1]
        return out
