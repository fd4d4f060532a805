"""orjson on the hot paths, the standard library's behaviour where the two differ."""

from __future__ import annotations

import json
import math

import pytest

from app import jsoncodec


def test_round_trip_is_compact_json() -> None:
    value = {"a": [1, "é", None, True], "b": {"c": 1.5}}
    assert jsoncodec.loads(jsoncodec.dumps(value)) == value
    assert jsoncodec.dumps_text({"a": 1}) == '{"a":1}'


def test_what_orjson_refuses_falls_back_to_the_standard_library() -> None:
    assert math.isnan(jsoncodec.loads(b'{"x": NaN}')["x"])
    assert jsoncodec.dumps({"big": 2**70}) == b'{"big":1180591620717411303424}'
    assert jsoncodec.dumps({1: "int key"}) == b'{"1":"int key"}'


def test_malformed_json_fails_with_a_value_error() -> None:
    for bad in (b"{", b"\xff", b"[1,]"):
        with pytest.raises(ValueError):
            jsoncodec.loads(bad)


def test_integers_beyond_64_bits_read_as_floats_as_kube_apiserver_reads_them() -> None:
    # The documented difference from ``json``: see jsoncodec.loads.
    assert jsoncodec.loads(b"[100000000000000000000000]") == [1e23]
    assert json.loads(b"[100000000000000000000000]") == [10**23]


@pytest.mark.parametrize(
    "text",
    [
        '{"n": 18446744073709551615, "m": -9223372036854775808}',  # 64-bit edges: orjson
        '{"n": 18446744073709551616}',  # one past: the standard library
        "[-9223372036854775809, -9999999999999999999]",  # below -2**63 with 19 digits
        "[100000000000000000000000, 1.5, -0.0, 1e400]",
        '{"digest": "12345678901234567890123", "x": [true, null]}',  # digits in a string
        '{"x": NaN, "y": Infinity}',
        '"\\ud800 lone surrogate"',
        '{"a": {"b": [1, 2, {"c": "é"}]}}',
    ],
)
def test_loads_exact_is_json_loads(text: str) -> None:
    # What stored JSON columns read back through: exactly the standard library's result.
    expected = json.loads(text)
    for data in (text, text.encode(), memoryview(text.encode())):
        got = jsoncodec.loads_exact(data)
        assert repr(got) == repr(expected)


def test_raw_json_is_stored_as_written() -> None:
    text = jsoncodec.RawJSON('{"z":1,"a":[2]}')
    assert jsoncodec.dumps_text(text) is text
    assert jsoncodec.dumps_text("plain string") == '"plain string"'
