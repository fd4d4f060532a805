"""Cutting off slow clients: a uvicorn HTTP protocol with header and body read deadlines.

uvicorn closes idle keep-alive connections, but a connection that never finishes its request
line and headers, or never finishes its body, stays open for as long as the client wants: 1,000
of them held for minutes cost a file descriptor and a buffer each, and an upload route waiting
on a body that never comes (issue 11). Here every request gets two deadlines:

- its headers must be complete within PROVENANT_HEADER_READ_TIMEOUT of the connection opening
  (or, on a kept-alive connection, of the request's first byte);
- its body must be complete within PROVENANT_BODY_READ_TIMEOUT of its headers.

Both are deadlines for the whole, not idle timeouts, so a client that trickles one byte at a
time is cut off all the same. A request cut off after its first byte is answered 408 in the
error shape, naming the setting, then the connection is closed; a connection that sent nothing
is simply closed. ``provenant serve`` gives this protocol to uvicorn.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from app.errors import error_body
from app.settings import get_settings

try:  # the same preference as uvicorn's "auto"
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Base
except ImportError:  # pragma: no cover - httptools is part of uvicorn[standard]
    from uvicorn.protocols.http.h11_impl import H11Protocol as _Base  # type: ignore[assignment]

REQUEST_TIMEOUT_CODE = "request_timeout"


def timeout_response(setting: str, seconds: float, what: str) -> bytes:
    """A complete HTTP/1.1 408 response that closes the connection."""
    body = orjson.dumps(
        error_body(
            REQUEST_TIMEOUT_CODE,
            f"the request {what} did not arrive within {setting} ({seconds:g} s)",
            {"limit": setting, "seconds": seconds},
        )
    )
    head = (
        "HTTP/1.1 408 Request Timeout\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode() + body


class SlowClientProtocol(_Base):
    """uvicorn's HTTP/1.1 protocol, with a deadline on each request's headers and body."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = get_settings()
        self.header_timeout = settings.header_read_timeout
        self.body_timeout = settings.body_read_timeout
        self._deadline: asyncio.TimerHandle | None = None
        self._request_begun = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout, self._headers_late)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._request_begun = True
        if self._deadline is None:  # a kept-alive connection's next request
            self._arm(self.header_timeout, self._headers_late)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._arm(self.body_timeout, self._body_late)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()
        self._request_begun = False

    def _arm(self, seconds: float, callback: Any) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, callback)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _headers_late(self) -> None:
        self._deadline = None
        if self._request_begun:
            self._cut_off("PROVENANT_HEADER_READ_TIMEOUT", self.header_timeout, "headers")
        elif not self.transport.is_closing():
            self.transport.close()  # nothing was asked: nothing to answer

    def _body_late(self) -> None:
        self._deadline = None
        self._cut_off("PROVENANT_BODY_READ_TIMEOUT", self.body_timeout, "body")

    def _cut_off(self, setting: str, seconds: float, what: str) -> None:
        if self.transport.is_closing():
            return
        cycle = self.cycle
        # Once the app has begun its answer, a 408 would corrupt it: then only close.
        if cycle is None or not cycle.response_started:
            self.transport.write(timeout_response(setting, seconds, what))
        if cycle is not None:
            # As a hang-up: the app's wait for the body ends (http.disconnect), and whatever it
            # answers is dropped, never written after the 408.
            cycle.disconnected = True
            cycle.message_event.set()
        self.logger.info("%s: closed a connection whose request %s was late", setting, what)
        self.transport.close()
