"""Fast JSON for the hot paths (orjson), with the standard library's behaviour kept where the two
differ: values orjson refuses (integers beyond 64 bits, non-string keys it cannot coerce) fall
back to ``json``. Storage only: hashes that verifiers recompute keep their own canonical forms
(RFC 8785 in app/audit/leaf.py, ``canonical_sha256`` in app/admission/record.py)."""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

_OPTIONS = orjson.OPT_NON_STR_KEYS


def dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value, option=_OPTIONS)
    except TypeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


class RawJSON(str):
    """JSON text already written (and checked) by its producer, for a JSON column: stored as
    it is instead of being parsed and written again. Only for text this process wrote itself."""

    __slots__ = ()


def dumps_text(value: Any) -> str:
    """What SQLAlchemy's ``json_serializer`` must return: a str."""
    if type(value) is RawJSON:
        return value
    return dumps(value).decode()


def loads(data: bytes | str) -> Any:
    """orjson first; the standard library on what orjson refuses (NaN, Infinity), so such a
    document parses, or fails with the standard library's message, as before. One difference
    is kept: an integer beyond 64 bits reads as a float, as kube-apiserver (Go) reads it too;
    use ``json`` where such integers must survive."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


# An integer of 19 digits or more may not fit in 64 bits (below -2**63 already has 19), where
# orjson would read a float.
_LONG_NUMBER = re.compile(r"[0-9]{19}")


def loads_exact(data: str | bytes | memoryview) -> Any:
    """``json.loads``, exactly (what SQLAlchemy's ``json_deserializer`` must be: stored JSON
    reads back as written), through orjson whenever that gives the same result. orjson reads
    an integer beyond 64 bits as a float, so text with a run of 19 digits (or anything orjson
    refuses) goes to the standard library."""
    text = data if isinstance(data, str) else bytes(data).decode()
    if _LONG_NUMBER.search(text) is None:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)
