"""CEL conditions: compiled when the policy loads, evaluated per attestation under a cost bound.

The ``cel`` package (Rust) has no cost limit and holds the GIL while it runs, so a runaway
expression cannot be interrupted from Python. The bound is therefore decided *before*
running: CEL has no loops or recursion, so the work an expression does is at most its size
times the widest collection it can iterate, raised to its comprehension nesting depth. That
estimate is computed against the actual input; over budget, the expression is not run and the
condition fails with the estimate in its reason (the same idea as Kubernetes' CEL cost limits).
Only the Rust-native standard library is exposed: the Python extras include list builders such
as ``lists.range`` that would let an expression create collections the estimate cannot see.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

import cel

from app.policy.results import CheckResult

VARIABLES = ("predicate", "statement", "signer", "image")
MAX_EXPRESSION_LENGTH = 4096
MAX_COMPREHENSION_DEPTH = 3
# About 15 ms of the Rust evaluator on this service's reference hardware (13 ns a unit).
DEFAULT_COST_BUDGET = 1_000_000

_MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
_TOKEN = re.compile(
    r"""(?P<string>[rRbB]{0,2}(?:\"\"\"(?:\\.|[^\\])*?\"\"\"|'''(?:\\.|[^\\])*?'''"""
    r"""|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'))"""
    r"|(?P<ident>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<number>[0-9][0-9A-Za-z_.]*)"
    r"|(?P<space>\s+)"
    r"|(?P<op>.)",
    re.DOTALL,
)
_CEL_POSITION = re.compile(r"<input>:(\d+):(\d+)")


class ConditionError(ValueError):
    """A condition that cannot be used; ``line``/``column`` are 1-based inside the expression."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


@dataclass(frozen=True)
class Shape:
    """What the cost estimate needs to know about an expression's source."""

    tokens: int
    depth: int  # deepest nesting of comprehension macros
    bound_names: frozenset[str]  # the loop variables those macros introduce


def scan(source: str) -> Shape:
    tokens = 0
    stack: list[bool] = []  # one entry per open "(": True when it opens a macro call
    depth = max_depth = 0
    bound: set[str] = set()
    items = [m for m in _TOKEN.finditer(source) if m.lastgroup != "space"]
    for index, match in enumerate(items):
        tokens += 1
        text = match.group()
        if text == "(":
            prev = items[index - 1].group() if index >= 1 else ""
            dot = items[index - 2].group() if index >= 2 else ""
            is_macro = dot == "." and prev in _MACROS
            stack.append(is_macro)
            if is_macro:
                depth += 1
                max_depth = max(max_depth, depth)
                if index + 2 < len(items) and items[index + 2].group() == ",":
                    bound.add(items[index + 1].group())
        elif text == ")" and stack:
            depth -= stack.pop()
    return Shape(tokens, max_depth, frozenset(bound))


@dataclass(frozen=True)
class Condition:
    source: str
    message: str | None
    program: cel.Program
    shape: Shape
    variables: frozenset[str]  # which of VARIABLES it reads: only those are converted

    def estimated_cost(self, width: int) -> int:
        return self.shape.tokens * max(width, 1) ** self.shape.depth

    @property
    def label(self) -> str:
        return self.message or self.source


def compile_condition(source: str, message: str | None = None) -> Condition:
    """Raise ConditionError (with the position CEL reports) for anything that cannot run."""
    if len(source) > MAX_EXPRESSION_LENGTH:
        raise ConditionError(
            f"expression is {len(source)} characters long; the limit is {MAX_EXPRESSION_LENGTH}"
        )
    try:
        program = cel.compile(source)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise _syntax_error(str(exc)) from exc
    shape = scan(source)
    if shape.depth > MAX_COMPREHENSION_DEPTH:
        raise ConditionError(
            f"expression nests {shape.depth} comprehensions; at most "
            f"{MAX_COMPREHENSION_DEPTH} are allowed (the cost grows with the power of the depth)"
        )
    unknown = sorted(set(program.variables()) - set(VARIABLES) - shape.bound_names)
    if unknown:
        raise ConditionError(
            f"unknown variable {', '.join(unknown)}: conditions see {', '.join(VARIABLES)}"
        )
    return Condition(
        source, message, program, shape, frozenset(program.variables()) & set(VARIABLES)
    )


def _syntax_error(text: str) -> ConditionError:
    # cel reports "ERROR: <input>:LINE:COL: Syntax error: ..." plus a caret drawing.
    position = _CEL_POSITION.search(text)
    first = next((ln for ln in text.splitlines() if "ERROR:" in ln), text.splitlines()[0])
    detail = first.split("ERROR:", 1)[-1]
    detail = _CEL_POSITION.sub("", detail).strip(" :").removeprefix("Syntax error:").strip()
    if position:
        return ConditionError(
            f"CEL syntax error: {detail}", int(position.group(1)), int(position.group(2))
        )
    return ConditionError(f"CEL error: {detail}")


def collection_width(value: Any, limit: int = 1_000_000) -> int:
    """Largest list or map length anywhere in ``value`` (iteratively: deep input
    must not hit Python's recursion limit)."""
    widest = 0
    stack = [value]
    seen = 0
    while stack and seen < limit:
        item = stack.pop()
        seen += 1
        if isinstance(item, Mapping):
            widest = max(widest, len(item))
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            widest = max(widest, len(item))
            stack.extend(item)
    return widest


def evaluate(
    conditions: list[Condition],
    variables: dict[str, Any] | cel.Context,
    *,
    width: int | None = None,
    budget: int = DEFAULT_COST_BUDGET,
) -> CheckResult:
    """Run every condition against one attestation; the first failure explains the result.

    ``width`` is ``collection_width`` of the variables when the caller has it cached; a
    prepared ``cel.Context`` (see ``ContextCache``) saves converting the variables again.
    """
    if not conditions:
        return CheckResult(True, "no conditions")
    context = variables if isinstance(variables, cel.Context) else cel.Context(variables=variables)
    for index, condition in enumerate(conditions):
        if condition.shape.depth:
            if width is None:
                width = collection_width(
                    variables if isinstance(variables, dict) else context.variables
                )
            cost = condition.estimated_cost(width)
            if cost > budget:
                return CheckResult(
                    False,
                    f"condition {condition.label!r} was not evaluated: its estimated cost "
                    f"{cost} exceeds the bound {budget}",
                    {"condition": index, "cost": cost, "budget": budget},
                )
        try:
            value = condition.program.execute(context)
        except Exception as exc:  # a Rust-side error surfaces as any of several types
            return CheckResult(
                False,
                f"condition {condition.label!r} could not be evaluated: {_error_text(exc)}",
                {"condition": index, "error": type(exc).__name__},
            )
        if value is not True:
            found = "false" if value is False else f"{value!r}, not a bool"
            return CheckResult(
                False,
                f"condition {condition.label!r} is {found} (expression: {condition.source})",
                {"condition": index},
            )
    return CheckResult(True, f"{len(conditions)} condition(s) hold")


class ContextCache:
    """Prepared CEL contexts, per thread, least recently used first out.

    Converting a statement into CEL values costs far more than evaluating an expression
    (about 150 us against 5 us for a 40-component SBOM), and admission judges the same
    attestations for every Pod of a Deployment. Keys must name immutable content: the
    attestation id is the hash of the uploaded bytes. Per thread, because a ``cel.Context``
    must not be used by two threads at once.
    """

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._local = threading.local()

    def get(self, key: Hashable, variables: Callable[[], dict[str, Any]]) -> cel.Context:
        cache: OrderedDict[Hashable, cel.Context] | None = getattr(self._local, "cache", None)
        if cache is None:
            cache = self._local.cache = OrderedDict()
        context = cache.get(key)
        if context is None:
            context = cel.Context(variables=variables())
            cache[key] = context
            if len(cache) > self.size:
                cache.popitem(last=False)
        else:
            cache.move_to_end(key)
        return context


def _error_text(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"no such key {exc.args[0]!r}" if exc.args else "no such key"
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    # The Rust errors append long advice; the first sentence is the finding.
    first, dot, _ = text.partition(". ")
    return first + dot.strip() if len(text) > 160 else text
