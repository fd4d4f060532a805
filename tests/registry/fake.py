"""A scripted registry over real HTTP for the faults a real one will not produce on demand
(429 with Retry-After, hanging, an oversized manifest, content that does not match its digest)
and for the OCI 1.1 referrers API, which distribution 2.8 lacks: its answers are shaped exactly
as the distribution spec gives them (spec.md, "Listing Referrers")."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.registry.tools import free_port


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering (a hanging registry)


Route = Answer | list[Answer] | Callable[[], Answer]


class FakeRegistry:
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.hits: list[str] = []
        self.port = free_port()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                fake.hits.append(self.path)
                answer = fake.answer(self.path.split("?", 1)[0])
                if answer.delay:
                    time.sleep(answer.delay)
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                try:
                    self.wfile.write(answer.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def answer(self, path: str) -> Answer:
        route = self.routes.get(path)
        if route is None:
            return Answer(
                404,
                b'{"errors":[{"code":"NOT_FOUND","message":"not here"}]}',
                {"Content-Type": "application/json"},
            )
        if isinstance(route, list):
            return route.pop(0) if len(route) > 1 else route[0]
        if callable(route):
            return route()
        return route

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
