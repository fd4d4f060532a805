"""Fast JSON for the hot paths (orjson), with the standard library's behaviour kept where the two
differ: values orjson refuses (integers beyond 64 bits, non-string keys it cannot coerce) fall
back to ``json``. Storage only: hashes that verifiers recompute keep their own canonical forms
(RFC 8785 in app/audit/leaf.py, ``canonical_sha256`` in app/admission/record.py)."""

from __future__ import annotations

import json
from typing import Any

import orjson

_OPTIONS = orjson.OPT_NON_STR_KEYS


def dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value, option=_OPTIONS)
    except TypeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def dumps_text(value: Any) -> str:
    """What SQLAlchemy's ``json_serializer`` must return: a str."""
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
