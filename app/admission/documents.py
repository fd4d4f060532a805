"""A decision's large documents, split into what many decisions share and what is its own.

A Deployment of 50 replicas asks 50 times about the same Pod template and gets the same
explanation 50 times, except for four values: the review's ``uid``, the decision's id (in the
response's annotations, denial message and warnings), its time (``evaluated_at``) and the Pod's
name (in a denial's message). The shared part is stored once,
under the SHA-256 of its canonical JSON; the decision's row keeps its own values. ``join_*``
puts back exactly the document that was split, byte for byte in canonical form, so the hashes
the audit log committed to (``request_sha256``, ``explanation_sha256``) still verify.

The stored request is split the same way: a Pod created by a ReplicaSet differs from its
siblings only in its name, uid and creation time, and the review's uid.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from app import jsoncodec

# Stands for the decision's id in a shared explanation. It has no border (no proper prefix is
# also a suffix), so after replacing every occurrence of the id by it in a text where it did
# not occur, its occurrences are exactly the replaced ones and the replacement reverses.
ID_MARK = "<decision-id>"
_ID_MARK = ID_MARK.encode()
# Stands for the decision's time (its evaluation's ``evaluated_at``), the same way.
TIME_MARK = "<decision-time>"
_TIME_MARK = TIME_MARK.encode()
# Stands for the object's name (a denial names the Pod); shorter names are left in place.
NAME_MARK = "<object-name>"
_NAME_MARK = NAME_MARK.encode()
_NAME_MIN = 3

# The request values that differ between Pods of one template; the rest is shared.
_OWN_REQUEST_PATHS: tuple[tuple[str, ...], ...] = (
    ("name",),
    ("object", "metadata", "name"),
    ("object", "metadata", "uid"),
    ("object", "metadata", "creationTimestamp"),
    ("oldObject", "metadata", "resourceVersion"),
    ("object", "metadata", "resourceVersion"),
)


@dataclass(frozen=True)
class Shared:
    """A document's shared part: its canonical JSON and the SHA-256 it is stored under."""

    sha256: str
    canonical: bytes


def shared(canonical: bytes) -> Shared:
    return Shared(hashlib.sha256(canonical).hexdigest(), canonical)


def canonical_bytes(value: Any) -> bytes:
    """The value's JSON with keys sorted (by code point), no whitespace, UTF-8, strings escaped
    only where JSON requires, floats in shortest round-trip form. orjson writes it; the
    standard library writes the same bytes for what orjson refuses (integers beyond 64 bits)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def explanation_body(explanation: bytes, images: Any, reasons: Any) -> bytes:
    """The stored document: the shared explanation, with the images and reasons shown in
    decision lists (they too are the same for every decision of a template), as canonical
    JSON, the three keys in sorted order."""
    return b"".join(
        (b'{"explanation":', explanation, b',"images":', canonical_bytes(images),
         b',"reasons":', canonical_bytes(reasons), b"}")
    )  # fmt: skip


def split_explanation(
    explanation: bytes, decision_id: str, uid: str, at: str, name: str | None
) -> bytes:
    """The shared part of ``explanation`` (canonical JSON) for a decision with this id, review
    uid, time (``at``: ``time_text`` of it, which its evaluation states as ``evaluated_at``)
    and object name (in a denial's message): the response's ``uid`` removed, the id, the time
    and the name replaced by marks.

    When that cannot be reversed exactly (a mark already occurs, or the response does not
    carry this uid) the explanation is kept whole: its response then still has its ``uid``,
    which is how ``join_explanation`` tells the two apart."""
    value = jsoncodec.loads_exact(explanation)
    response = value.get("response") if isinstance(value, dict) else None
    if not isinstance(response, dict) or response.get("uid") != uid:
        return explanation
    rest = {k: v for k, v in response.items() if k != "uid"}
    text = canonical_bytes({**value, "response": rest})
    if any(mark in text for mark in (_ID_MARK, _TIME_MARK, _NAME_MARK)):
        return explanation
    shared = text.replace(decision_id.encode(), _ID_MARK).replace(at.encode(), _TIME_MARK)
    name = name if name and len(name) >= _NAME_MIN else None
    if name is not None and name.encode() in shared:
        shared = shared.replace(name.encode(), _NAME_MARK)
        try:  # a name could fall inside an escape sequence
            jsoncodec.loads_exact(shared)
        except ValueError:
            return explanation
    if _filled(shared, decision_id, at, name) != text:  # checked, not argued: it must reverse
        return explanation
    return shared


def join_explanation(stored: Any, decision_id: str, uid: str, at: str, name: str | None) -> Any:
    """The explanation ``split_explanation`` split, from its stored part (as read back)."""
    response = stored.get("response") if isinstance(stored, dict) else None
    if not isinstance(response, dict) or "uid" in response:
        return stored  # kept whole
    whole = jsoncodec.loads_exact(_filled(canonical_bytes(stored), decision_id, at, name))
    whole["response"]["uid"] = uid
    return whole


def time_text(at: datetime) -> str:
    """How a decision's time is written in its explanation (``evaluated_at``); naive is UTC
    (SQLite keeps no zone)."""
    return (at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)).isoformat()


def _filled(shared: bytes, decision_id: str, at: str, name: str | None) -> bytes:
    if name is not None and _NAME_MARK in shared:
        shared = shared.replace(_NAME_MARK, name.encode())
    return shared.replace(_TIME_MARK, at.encode()).replace(_ID_MARK, decision_id.encode())


def split_request(request: dict[str, Any], uid: str) -> tuple[bytes, dict[str, Any]]:
    """The shared part of a stored request (canonical JSON) and its own values by dotted path:
    each of ``_OWN_REQUEST_PATHS`` present, and the review's uid unless it is ``uid`` (the
    decision row's, which ``join_request`` then puts back)."""
    own: dict[str, Any] = {}
    template = _without(request, (), own)
    if own.get("uid") == uid:
        del own["uid"]
    return canonical_bytes(template), own


def join_request(template: Any, own: dict[str, Any] | None, uid: str) -> Any:
    whole = dict(template)
    whole["uid"] = uid  # an AdmissionRequest always has one; ``own`` may hold it instead
    for dotted, value in (own or {}).items():
        _put(whole, dotted.split("."), value)
    return whole


def _without(value: dict[str, Any], prefix: tuple[str, ...], own: dict[str, Any]) -> Any:
    copied = {}
    for key, item in value.items():
        path = (*prefix, key)
        if path == ("uid",) or path in _OWN_REQUEST_PATHS:
            own[".".join(path)] = item
        elif isinstance(item, dict) and any(p[: len(path)] == path for p in _OWN_REQUEST_PATHS):
            copied[key] = _without(item, path, own)
        else:
            copied[key] = item
    return copied


def _put(target: dict[str, Any], path: list[str], value: Any) -> None:
    for key in path[:-1]:
        target[key] = dict(target[key])  # copies: the template may be shared
        target = target[key]
    target[path[-1]] = value
