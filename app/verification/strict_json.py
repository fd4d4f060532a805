"""JSON from untrusted senders, read one way only and within the input limits.

What is refused, each with its own error code (``app.verification.errors``):
- nesting deeper than ``max_json_depth`` (the standard library recurses in C and fails with
  RecursionError near 1,000; what is stored must also serialise back, see GET endpoints);
- an integer longer than ``max_integer_digits`` (int() is quadratic in the digits);
- a key repeated in one object: parsers disagree on which value wins, so a signed document
  with a repeated key can show an auditor something other than what was verified;
- NUL and lone surrogates in any key or string: PostgreSQL's text and JSONB cannot hold them,
  so accepting them would make SQLite and PostgreSQL answer differently;
- NaN, Infinity and numbers that overflow a double (not JSON; PostgreSQL refuses them).

orjson reads the document first (C, no recursion limit issue: it stops at depth 1024); the
standard library reads it again only where orjson would lose precision (integers of 19 digits
or more, which it reads as floats) and to name a repeated key or a syntax error.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

from app.limits import InputLimits, current
from app.verification.errors import (
    DUPLICATE_KEY,
    INTEGER_TOO_LONG,
    JSON_TOO_DEEP,
    MALFORMED,
    UNREPRESENTABLE_TEXT,
    VerificationError,
)

_LONG_DIGITS = re.compile(r"[0-9]{19}")
# Every string token, and whether a colon follows it (then it is a key). Applied to text that
# orjson has accepted, scanning from the start, so each match begins at an opening quote.
_STRING_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"\s*(:?)')
_UNREPRESENTABLE = re.compile("[\x00\ud800-\udfff]")


# Small documents without a backslash (most AdmissionReviews) are checked without walking the
# parsed value in Python: with no escapes, a string holds no quote and no NUL.
_SMALL = 256 * 1024
_NOT_STRUCTURE = str.maketrans(dict.fromkeys(' \t\r\n"0123456789truefalsnE+-.:,'))
_DIGITS_AS_ZERO = str.maketrans("123456789", "000000000")
_NINETEEN_DIGITS = "0" * 19


class _Refused(Exception):
    def __init__(self, error: VerificationError) -> None:
        super().__init__(error.message)
        self.error = error


def loads(data: bytes | bytearray | memoryview | str, what: str = "the document") -> Any:
    """The parsed JSON value; VerificationError naming ``what`` (and where in it) otherwise."""
    limits = current()
    if isinstance(data, str):
        text = data
    else:
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise VerificationError(MALFORMED, f"{what} is not UTF-8 text: {exc}") from exc
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise _orjson_refusal(text, str(exc), what, limits) from None
    if len(text) <= _SMALL and "\\" not in text and _plain_text_holds(text, value, limits):
        return value
    # orjson refuses raw control characters and lone surrogates, so text it read can hold
    # neither unless written as an escape.
    check_text = "\\u0000" in text
    try:
        strings, floats, deep = _scan(value, limits.max_json_depth)
        if deep or check_text:
            _check(value, what, limits, check_text)  # names where, and raises
        if floats and _LONG_DIGITS.search(text) is not None:
            value = json.loads(
                text,
                parse_int=lambda digits: _integer(digits, what, limits),
                parse_float=lambda digits: _float(digits, what),
                parse_constant=lambda name: _constant(name, what),
            )
            strings, _ = _check(value, what, limits, True)
    except _Refused as refused:
        raise refused.error from None
    except RecursionError:
        raise _too_deep(what, limits, "") from None
    # A repeated key is one string token in the text that the parsed value does not hold.
    tokens = len(_STRING_TOKEN.findall(text)) if "\\" in text else text.count('"') // 2
    if strings != tokens:
        raise _duplicate(text, what)
    return value


def _plain_text_holds(text: str, value: Any, limits: InputLimits) -> bool:
    """For text without escapes: True when it is within the limits and repeats no key; False
    when the general path must decide (it also names what is wrong)."""
    bare = "".join(text.split('"')[::2])  # with no escapes, every other piece is a string
    if _NINETEEN_DIGITS in bare.translate(_DIGITS_AS_ZERO):
        return False  # an integer orjson may have read as a float
    structure = bare.translate(_NOT_STRUCTURE)  # brackets only, strings gone
    for _ in range(limits.max_json_depth):
        if not structure:
            break
        structure = structure.replace("[]", "").replace("{}", "")
    if structure:
        return False  # too deep
    # A repeated key is a string token of the text that the parsed value does not hold.
    # (Dumped only now: orjson refuses to write values nested deeper than 254.)
    return text.count('"') == orjson.dumps(value).count(b'"')


def _orjson_refusal(text: str, reason: str, what: str, limits: InputLimits) -> VerificationError:
    if "depth limit" in reason.lower() or "recursion" in reason.lower():
        return _too_deep(what, limits, "")
    if "surrogate" in reason.lower():
        return VerificationError(
            UNREPRESENTABLE_TEXT,
            f"{what} holds a lone UTF-16 surrogate escape, which is not text",
            {"reason": reason},
        )
    # The standard library reads the same grammar and says where and what went wrong; it
    # fails at the same point, below orjson's depth limit, or accepts what is not JSON.
    try:
        json.loads(
            text,
            parse_int=lambda digits: _integer(digits, what, limits),
            parse_constant=lambda name: _constant(name, what),
        )
    except _Refused as refused:
        return refused.error
    except RecursionError:
        return _too_deep(what, limits, "")
    except json.JSONDecodeError as exc:
        return VerificationError(
            MALFORMED, f"{what} is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        )
    except ValueError as exc:
        return VerificationError(MALFORMED, f"{what} is not JSON ({exc})")
    # Accepted by the standard library only: a number beyond a double, for instance.
    return VerificationError(MALFORMED, f"{what} is not JSON that can be stored ({reason})")


def _integer(digits: str, what: str, limits: InputLimits) -> int:
    length = len(digits.lstrip("-"))
    if length > limits.max_integer_digits:
        raise _Refused(
            VerificationError(
                INTEGER_TOO_LONG,
                f"{what} holds an integer of {length} digits; the limit is "
                f"{limits.max_integer_digits} (PROVENANT_MAX_INTEGER_DIGITS)",
                {"limit": "PROVENANT_MAX_INTEGER_DIGITS", "max": limits.max_integer_digits},
            )
        )
    return int(digits)


def _float(digits: str, what: str) -> float:
    value = float(digits)
    if math.isinf(value):
        raise _Refused(
            VerificationError(MALFORMED, f"{what} holds a number beyond a double: {digits[:40]}")
        )
    return value


def _constant(name: str, what: str) -> float:
    raise _Refused(VerificationError(MALFORMED, f"{what} holds {name}, which is not JSON"))


def _too_deep(what: str, limits: InputLimits, path: str) -> VerificationError:
    where = f" at {path[:200]}" if path else ""
    return VerificationError(
        JSON_TOO_DEEP,
        f"{what} nests arrays and objects deeper than {limits.max_json_depth}{where} "
        "(PROVENANT_MAX_JSON_DEPTH)",
        {"limit": "PROVENANT_MAX_JSON_DEPTH", "max": limits.max_json_depth},
    )


def _scan(value: Any, max_depth: int) -> tuple[int, bool, bool]:
    """The fast walk (the admission path parses every review): the number of strings, keys
    included; whether a float was read (orjson reads integers beyond 64 bits as floats); and
    whether the nesting exceeds ``max_depth``. ``_check`` then says where, when needed."""
    strings = 0
    floats = False
    stack: list[tuple[Any, int]] = [(value, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        node, depth = pop()
        kind = type(node)
        if kind is dict:
            if depth > max_depth:
                return strings, floats, True
            strings += len(node)
            children: Any = node.values()
        elif kind is list:
            if depth > max_depth:
                return strings, floats, True
            children = node
        else:
            strings += kind is str
            floats = floats or kind is float
            continue
        for item in children:
            kind = type(item)
            if kind is str:
                strings += 1
            elif kind is dict or kind is list:
                push((item, depth + 1))
            elif kind is float:
                floats = True
    return strings, floats, False


def _check(value: Any, what: str, limits: InputLimits, check_text: bool) -> tuple[int, bool]:
    """Walk the value once: depth checked, text checked when ``check_text``. Returns the
    number of strings it holds (keys included) and whether it holds a float (orjson reads
    integers beyond 64 bits as floats)."""
    if isinstance(value, str):
        if check_text:
            _text(value, what, "")
        return 1, False
    if not isinstance(value, dict | list):
        return 0, isinstance(value, float)
    strings = 0
    floats = False
    stack: list[tuple[Any, int, str]] = [(value, 1, "")]
    while stack:
        node, depth, path = stack.pop()
        if depth > limits.max_json_depth:
            raise _Refused(_too_deep(what, limits, path or "the top level"))
        if isinstance(node, dict):
            strings += len(node)
            items: Any = node.items()
        else:
            items = enumerate(node)
        for key, item in items:
            if isinstance(item, str):
                strings += 1
                if check_text:
                    _text(item, what, _join(path, key))
            elif isinstance(item, dict | list):
                stack.append((item, depth + 1, _join(path, key)))
            elif isinstance(item, float):
                floats = True
            if check_text and isinstance(key, str):
                _text(key, what, f"the key {_join(path, key)!r}")
    return strings, floats


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _text(value: str, what: str, where: str) -> None:
    found = _UNREPRESENTABLE.search(value)
    if found is None:
        return
    kind = "a NUL character" if found.group() == "\x00" else "a lone UTF-16 surrogate"
    field = where or "the top level"
    raise _Refused(
        VerificationError(
            UNREPRESENTABLE_TEXT,
            f"{what}: {field} holds {kind}, which cannot be stored",
            {"field": field},
        )
    )


def _duplicate(text: str, what: str) -> VerificationError:
    """The repeated key, named (the standard library keeps every pair when asked)."""
    found: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for key, _ in items:
            if key in seen and not found:
                found.append(key)
            seen.add(key)
        return dict(items)

    json.loads(text, object_pairs_hook=pairs)
    key = found[0] if found else "?"
    return VerificationError(
        DUPLICATE_KEY,
        f"{what} repeats the key {key!r} in one object; parsers disagree on which value "
        "counts, so documents with repeated keys are refused",
        {"key": key},
    )
