"""The fast canonical JSON (orjson) must be RFC 8785 byte for byte wherever it is used."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from app.admission.record import canonical_sha256
from app.audit import leaf

_SAFE = 2**53 - 1
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-_SAFE, max_value=_SAFE)
    | st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=25,
)


@settings(max_examples=400, deadline=None)
@given(values)
def test_canonical_json_is_rfc8785(value: Any) -> None:
    assert leaf.canonical_json(value) == rfc8785.dumps(value)


@pytest.mark.parametrize(
    "value",
    [
        {"float": 1.0},
        {"exp": 1e16},
        {"big": 2**53},
        {"\ue000": 1, "\U0001f600": 2},  # UTF-16 order differs from code point order
        ['\x00\x1f\u2028\\"'],
    ],
)
def test_what_orjson_would_write_differently_goes_to_the_reference(value: Any) -> None:
    try:
        expected = rfc8785.dumps(value)
    except Exception as exc:  # e.g. an integer beyond 2**53: refused either way
        with pytest.raises(type(exc)):
            leaf.canonical_json(value)
        return
    assert leaf.canonical_json(value) == expected


@settings(max_examples=200, deadline=None)
@given(values)
def test_canonical_sha256_is_sorted_compact_json(value: Any) -> None:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical_sha256(value) == hashlib.sha256(text.encode()).hexdigest()


def test_normalize_keeps_failing_on_what_json_cannot_carry() -> None:
    with pytest.raises(ValueError):
        leaf.normalize_payload({"x": float("nan")})
    assert leaf.normalize_payload({"t": (1, 2), "n": {"b": 1}}) == {"t": [1, 2], "n": {"b": 1}}
