"""Refuse, before any route runs, URLs holding text no database can store.

PostgreSQL's text type cannot hold NUL (U+0000), so a NUL in a query parameter or path
segment reached the database as a 500 there and as an ordinary miss on SQLite. Checked once,
for every route, here: the answer is the same 400 on every database, naming the parameter.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from app import jsoncodec
from app.errors import error_body


class RefuseUnrepresentable:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            where = _nul_parameter(scope)
            if where is not None:
                await _refuse(send, where)
                return
        await self.app(scope, receive, send)


def _nul_parameter(scope: Scope) -> str | None:
    """The parameter holding a NUL ("path" for the URL path), or None."""
    if "\x00" in scope["path"]:
        return "path"
    query: bytes = scope.get("query_string", b"")
    if b"%00" not in query and b"\x00" not in query:
        return None
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True, errors="replace")
    for name, value in pairs:
        if "\x00" in name:
            return "a query parameter name"
        if "\x00" in value:
            return name
    return None


async def _refuse(send: Send, parameter: str) -> None:
    body = jsoncodec.dumps(
        error_body(
            "invalid_parameter",
            f"{parameter} holds a NUL character (%00), which no stored value can contain",
            {"parameter": parameter},
        )
    )
    await send(
        {
            "type": "http.response.start",
            "status": 400,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
