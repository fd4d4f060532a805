"""The bounds every untrusted document is held to before expensive work is done on it.

One process-wide value, set from the settings when the app is built (``configure``): the
verification layer sits below settings and FastAPI, and every caller of it in a process
enforces the same limits.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InputLimits:
    max_json_depth: int = 64  # nested arrays and objects, the outermost counting 1
    max_integer_digits: int = 100  # digits of one JSON integer
    max_signatures: int = 16  # signatures on one DSSE envelope or in-toto link
    max_jsonl_lines: int = 1000  # documents in one .intoto.jsonl upload


_current = InputLimits()


def configure(limits: InputLimits) -> None:
    global _current
    _current = limits


def current() -> InputLimits:
    return _current
