"""The canonical form of an event: what its payload hash and its Merkle leaf hash commit to.

This is a wire format shared with every verifier (docs/audit.md defines it); changing anything
here breaks every existing log, so a new format needs a new ``v`` and both kept.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import rfc8785

from app.audit.merkle import hash_leaf

LEAF_VERSION = 1
_SAFE_INTEGER = 2**53  # RFC 8785 numbers are IEEE doubles: integers must stay below this


def normalize_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload as the database will give it back, so the hash recomputes identically later.

    A JSON round trip turns tuples into lists and fails now (inside the caller's transaction)
    on values JSON cannot carry, instead of storing something that can never verify. (Integers
    beyond +-2**53, which RFC 8785 cannot represent, fail in ``payload_hash``.)
    """
    if not isinstance(payload, dict):
        raise TypeError(f"audit payload must be a JSON object, not {type(payload).__name__}")
    return json.loads(json.dumps(payload, allow_nan=False))


def canonical_json(value: Any) -> bytes:
    """RFC 8785 JSON of ``value``.

    Events are appended on every admission, and the reference implementation (``rfc8785``,
    pure Python) cost more than the rest of an append. For JSON without floating-point numbers
    and without keys that sort differently by UTF-16 code units than by code points, RFC 8785
    is exactly orjson's compact, key-sorted output (same string escapes, integers as digits;
    tests/audit/test_leaf.py checks the two agree on generated values); anything else goes to
    the reference implementation.
    """
    written = _written_by_orjson(value)
    return written if written is not None else rfc8785.dumps(value)


def _written_by_orjson(value: Any) -> bytes | None:
    """RFC 8785 JSON of ``value`` from orjson, where that is exactly the same; else None."""
    if not _plain(value):
        return None
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        return None  # a lone surrogate: the reference implementation decides


def _plain(value: Any) -> bool:
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not (key.isascii() or max(key) < "\ue000"):
                return False
            if not _plain(item):
                return False
        return True
    if kind is list or kind is tuple:
        return all(_plain(item) for item in value)
    if kind is int:
        return -_SAFE_INTEGER < value < _SAFE_INTEGER
    return False


def payload_hash(payload: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(payload)).hexdigest()


def normalized_with_hash(payload: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """``normalize_payload`` and ``payload_hash`` of the result, from one serialization where
    orjson can write the canonical form (every admission appends an event)."""
    written = _written_by_orjson(payload) if isinstance(payload, dict) else None
    if written is not None:
        return orjson.loads(written), hashlib.sha256(written).hexdigest()
    normalized = normalize_payload(payload)
    return normalized, payload_hash(normalized)


def format_time(value: datetime) -> str:
    """RFC 3339 UTC with exactly six fractional digits: the precision PostgreSQL keeps.

    SQLite hands datetimes back naive; they were stored as UTC, so naive means UTC.
    """
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def leaf_input(seq: int, time: str, type_: str, actor: str, payload_hash_hex: str) -> bytes:
    """RFC 8785 JSON of the event's identity; the payload enters through its hash."""
    return canonical_json(
        {
            "actor": actor,
            "payload_hash": payload_hash_hex,
            "seq": seq,
            "time": time,
            "type": type_,
            "v": LEAF_VERSION,
        }
    )


def leaf_hash(seq: int, time: str, type_: str, actor: str, payload_hash_hex: str) -> bytes:
    return hash_leaf(leaf_input(seq, time, type_, actor, payload_hash_hex))


@dataclass(frozen=True)
class EventRecord:
    """An event as exported and as a verifier sees it (stored hashes included, unchecked)."""

    seq: int
    time: str
    type: str
    actor: str
    payload: dict[str, Any]
    payload_hash: str
    leaf_hash: str

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": self.time,
            "type": self.type,
            "actor": self.actor,
            "payload": self.payload,
            "payload_hash": self.payload_hash,
            "leaf_hash": self.leaf_hash,
        }

    @classmethod
    def from_json(cls, data: Any) -> EventRecord:
        """Strict: a verifier must not guess what a malformed line meant."""
        if not isinstance(data, dict):
            raise ValueError("an event must be a JSON object")
        fields = {
            "seq": int,
            "time": str,
            "type": str,
            "actor": str,
            "payload": dict,
            "payload_hash": str,
            "leaf_hash": str,
        }
        for name, kind in fields.items():
            value = data.get(name)
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise ValueError(f"event field {name!r} is missing or not a {kind.__name__}")
        return cls(**{name: data[name] for name in fields})
