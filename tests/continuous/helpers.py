"""Shared by the continuous-validation tests: pods as the apiserver returns them, a clock the
test moves, and a real HTTP receiver for notifications."""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

REPOSITORY = "ghcr.io/acme/app"


def digest(label: str) -> str:
    return hashlib.sha256(f"continuous-{label}".encode()).hexdigest()


def image(label: str) -> str:
    return f"{REPOSITORY}@sha256:{digest(label)}"


def pod(
    name: str,
    spec_image: str,
    *,
    namespace: str = "apps",
    image_id: str | None = None,
    owner: tuple[str, str] | None = None,
    uid: str | None = None,
    phase: str = "Running",
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "uid": uid or f"uid-{name}"}
    if owner:
        metadata["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": owner[0],
                "name": owner[1],
                "uid": "x",
                "controller": True,
            }
        ]
    status: dict[str, Any] = {"phase": phase}
    if image_id:
        status["containerStatuses"] = [{"name": "app", "image": spec_image, "imageID": image_id}]
    return {
        "metadata": metadata,
        "spec": {"containers": [{"name": "app", "image": spec_image}]},
        "status": status,
    }


@dataclass
class FakeClock:
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def now(self) -> datetime:
        return self.at

    def advance(self, **kwargs: float) -> None:
        self.at += timedelta(**kwargs)


class Receiver:
    """An HTTP endpoint on 127.0.0.1 that records what it is sent; answers ``fail`` requests
    with 500 first."""

    def __init__(self, fail: int = 0) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.fail = fail
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if receiver.fail > 0:
                    receiver.fail -= 1
                    self.send_response(500)
                    self.end_headers()
                    return
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.received]
