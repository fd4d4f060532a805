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
