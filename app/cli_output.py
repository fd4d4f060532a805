"""How the ``provenant`` command prints: ``--output json|table``, plain lines without a terminal,
messages on stderr, and help text without Python types.

Results go to stdout (a table on a terminal; tab-separated lines under a header otherwise, never
wrapped, so CI logs keep paths and ids whole; or JSON), everything else to stderr.
"""

from __future__ import annotations

import enum
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import PurePath
from typing import Annotated, Any

import typer


class Output(enum.StrEnum):
    table = "table"
    json = "json"


OutputOption = Annotated[
    Output,
    typer.Option(
        "--output", "-o", help="table (plain lines when not a terminal) or json", metavar="FORMAT"
    ),
]


def to_jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def print_json(value: Any) -> None:
    typer.echo(json.dumps(to_jsonable(value), indent=2, ensure_ascii=False))


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple | set | frozenset):
        return ",".join(cell(v) for v in value) or "-"
    if hasattr(value, "isoformat"):
        return value.isoformat(timespec="seconds")
    # One item, one line: a newline or tab inside a value would split a row.
    return str(value).replace("\t", " ").replace("\n", " ")


def print_rows(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    output: Output,
    *,
    empty: str = "nothing found",
) -> None:
    """Rows as JSON (every field), a table on a terminal, or a header and tab-separated lines."""
    if output is Output.json:
        print_json(list(rows))
        return
    if not rows:
        typer.echo(empty, err=True)
        return
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(*columns, box=None, header_style="bold")
        for row in rows:
            table.add_row(*(cell(row.get(c)) for c in columns), end_section=False)
        Console().print(table, markup=False, highlight=False)
        return
    typer.echo("\t".join(columns))
    for row in rows:
        typer.echo("\t".join(cell(row.get(c)) for c in columns))


def print_record(record: Mapping[str, Any], output: Output) -> None:
    """One object: JSON, or ``field<TAB>value`` lines (nested values as compact JSON)."""
    if output is Output.json:
        print_json(record)
        return
    for key, value in record.items():
        if isinstance(value, Mapping | list) and value:
            value = json.dumps(to_jsonable(value), separators=(",", ":"), ensure_ascii=False)
        typer.echo(f"{key}\t{cell(value)}")


def note(message: str) -> None:
    typer.echo(message, err=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``error: message`` on stderr; ``raise fail(...)``."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def lines(values: Iterable[str]) -> str:
    return "\n".join(values)


# Help text ----------------------------------------------------------------------------------


def plain_help() -> None:
    """Show click's metavars (``FILE...``, ``TEXT``, ``INTEGER``) in help, not the Python
    annotations Typer prints (``<list[Path]>``, ``{files}``). Checked by tests/core/test_cli.py
    over every command, so a Typer upgrade that moves these hooks shows at once."""
    from typer import core

    def display_type(self: Any, ctx: Any) -> str | None:
        if getattr(self, "is_flag", False) or isinstance(self, core.TyperArgument):
            return None
        desc = self.type_descriptor
        if desc.choices:
            return "|".join(str(getattr(c, "value", c)) for c in desc.choices)
        if desc.is_path:
            return "PATH"
        if desc.is_datetime:
            return "DATETIME"
        annotation = desc.annotation
        inner = getattr(annotation, "__args__", None)
        if inner:  # list[X]: an option repeated
            annotation = inner[0]
        if isinstance(annotation, type) and issubclass(annotation, PurePath):
            return "PATH"
        names = {int: "INTEGER", float: "NUMBER", str: "TEXT"}
        return names.get(annotation, "VALUE")

    def usage_name(self: Any) -> str:
        name = str(self.display_name_raw).upper()
        name = name if self.required else f"[{name}]"
        return name + ("..." if self.nargs != 1 and not name.endswith("...") else "")

    core._TyperParameter.display_type = display_type  # type: ignore[method-assign]
    core.TyperArgument.display_type_rich = display_type  # type: ignore[method-assign]
    core.TyperArgument._usage_display_name = usage_name  # type: ignore[method-assign]
