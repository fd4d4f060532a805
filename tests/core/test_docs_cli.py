"""Every `provenant ...` command shown in README.md and docs/*.md names a real command and only
options that command has (the query commands are also run against a live server, in
tests/e2e/test_query_cli.py, and the curl upload block in tests/e2e/test_ci_docs.py)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
import typer.main

from app.cli import cli

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# `provenant` as the command word: at a line start, after a prompt, a path, `$(`, `&&`, `|`,
# a backtick, or `run --rm migrate` (Compose); not as an argument (`kubectl -n provenant`).
_COMMAND = re.compile(
    r"(?:^|[`(]|&&\s*|\|\s*|\$\s|/bin/|run --rm \w+ )provenant((?: +[^\s`|;&)#]+)*)", re.M
)


def documented_commands() -> list[tuple[str, list[str]]]:
    found = []
    for path in DOCS:
        text = path.read_text().replace("\\\n", " ")
        for number, line in enumerate(text.splitlines(), 1):
            for match in _COMMAND.finditer(line):
                words = (
                    shlex.split(match.group(1).replace("[", " ").replace("]", " "), posix=True)
                    if match.group(1).strip()
                    else []
                )
                if words and not words[0].startswith("-") and not re.match(r"^[a-z]", words[0]):
                    continue
                found.append((f"{path.name}:{number}", words))
    return found


def _resolve(words: list[str]) -> tuple[click.Command, list[str]]:
    command: click.Command = typer.main.get_command(cli)
    rest = list(words)
    # Typer's groups keep their subcommands in ``commands`` (not all are click.Group).
    while getattr(command, "commands", None) and rest and not rest[0].startswith("-"):
        sub = command.commands.get(rest[0])  # type: ignore[attr-defined]
        if sub is None:
            break
        command, rest = sub, rest[1:]
    return command, rest


COMMANDS = documented_commands()


def test_the_docs_show_commands() -> None:
    shown = {tuple(w[:2]) for _, w in COMMANDS}
    assert {("token", "create"), ("upload", "FILE..."), ("policy", "lint")} <= shown, shown


def test_a_wrong_command_or_option_is_caught() -> None:
    command, rest = _resolve(["token", "lst"])
    assert rest == ["lst"] and getattr(command, "commands", None)
    command, rest = _resolve(["policy", "test", "--attestations"])
    options = {opt for param in command.params for opt in param.opts}
    assert "--attestation" in options and "--attestations" not in options


@pytest.mark.parametrize(("where", "words"), COMMANDS, ids=[w for w, _ in COMMANDS])
def test_documented_command_exists_with_its_options(where: str, words: list[str]) -> None:
    command, rest = _resolve(words)
    assert not getattr(command, "commands", None) or not rest or rest[0].startswith("-"), (
        f"{where}: `provenant {' '.join(words)}`: no command {rest[0]!r}"
    )
    options = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    for word in rest:
        if word.startswith("--"):
            name = word.split("=", 1)[0]
            assert name in options, f"{where}: `provenant {' '.join(words)}`: no option {name}"
