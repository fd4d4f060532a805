"""app.verification.strict_json: one reading of untrusted JSON, within the limits."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.verification import strict_json
from app.verification.errors import VerificationError

_text = st.text(alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="\x00"))
_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text
)
_json = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(_text.filter(lambda k: len(k) < 6), children, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(value=_json, indent=st.sampled_from([None, 1]), ascii_only=st.booleans())
def test_reads_what_the_standard_library_reads(
    value: Any, indent: int | None, ascii_only: bool
) -> None:
    text = json.dumps(value, indent=indent, ensure_ascii=ascii_only)
    assert strict_json.loads(text) == json.loads(text)


@settings(max_examples=300, deadline=None)
@given(value=st.dictionaries(_text, _json, min_size=1, max_size=4), data=st.data())
def test_any_repeated_key_is_refused(value: dict[str, Any], data: st.DataObject) -> None:
    key = data.draw(st.sampled_from(sorted(value)))
    text = json.dumps(value)
    repeated = text[:-1] + f", {json.dumps(key)}: {json.dumps(value[key])}}}"
    with pytest.raises(VerificationError) as refused:
        strict_json.loads(repeated)
    assert refused.value.code == "duplicate_key"
    assert refused.value.details == {"key": key}


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("[" * 100_000, "json_too_deep"),
        ('{"a":' * 65 + "1" + "}" * 65, "json_too_deep"),
        ('{"a":' * 300 + "1" + "}" * 300, "json_too_deep"),  # orjson cannot write it back
        ("[" * 65 + "]" * 65, "json_too_deep"),
        ("9" * 101, "integer_too_long"),
        ("[" + "9" * 5_000 + "]", "integer_too_long"),
        ('{"a\\u0000": 1}', "unrepresentable_text"),
        ('["\\u0000"]', "unrepresentable_text"),
        ('["\\ud800"]', "unrepresentable_text"),
        ('{"a": 1, "a": 1}', "duplicate_key"),
        ('{"a": "\\"", "a": 1}', "duplicate_key"),
        ("[NaN]", "malformed"),
        ("[1e999]", "malformed"),
        ("[1,]", "malformed"),
        (b"\xff", "malformed"),
    ],
)
def test_refusals_have_their_codes(text: str | bytes, code: str) -> None:
    with pytest.raises(VerificationError) as refused:
        strict_json.loads(text)
    assert refused.value.code == code


@pytest.mark.parametrize(
    "text",
    [
        '{"a": "[[[[", "b": "}}"}',
        '{"a": "x\\":y"}',
        '{"a": "\\\\", "b": "\\\\"}',
        "[12345678901234567890123456789]",
        '["\\\\u0000"]',
        '{"a":' * 64 + "1" + "}" * 64,
    ],
)
def test_accepted(text: str) -> None:
    assert strict_json.loads(text) == json.loads(text)
