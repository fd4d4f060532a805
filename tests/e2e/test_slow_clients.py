"""Slow clients are cut off (issue 11): raw sockets against the real server process, with the
header and body read deadlines set to one second. One server per database for the module:
nothing here writes but the tokens, and a server start costs seconds on a shared machine."""

from __future__ import annotations

import json
import shutil
import socket
import time
from collections.abc import Iterator

import pytest

from app.db import Database
from tests.conftest import BACKENDS
from tests.helpers import TokenFactory, write_trust
from tests.server import ServerProcess
from tests.sigstore_stack import SigstoreTestStack

pytestmark = pytest.mark.e2e

DEADLINE = 1.0
# Generous: the machine is shared; what matters is "cut off", against "held forever" before.
CUT_WITHIN = DEADLINE + 4.0


@pytest.fixture(scope="module", params=BACKENDS)
def served(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    stack: SigstoreTestStack,
) -> Iterator[tuple[ServerProcess, TokenFactory]]:
    workdir = tmp_path_factory.mktemp("slow-clients")
    if request.param == "sqlite":
        shutil.copy(request.getfixturevalue("sqlite_template"), workdir / "provenant.db")
        url = f"sqlite:///{workdir / 'provenant.db'}"
    else:
        url = request.getfixturevalue("pg_server_url")
    policy_dir = workdir / "policies"
    policy_dir.mkdir()
    write_trust(policy_dir, stack)
    env = {
        "PROVENANT_HEADER_READ_TIMEOUT": str(DEADLINE),
        "PROVENANT_BODY_READ_TIMEOUT": str(DEADLINE),
        "PROVENANT_LOG_LEVEL": "info",
    }
    db = Database(url, pool_size=1)
    try:
        with ServerProcess(url, policy_dir, workdir, env=env) as running:
            yield running, TokenFactory(db)
    finally:
        db.dispose()
    assert "Traceback" not in running.log()
    assert "unhandled error" not in running.log()


@pytest.fixture
def server(served: tuple[ServerProcess, TokenFactory]) -> ServerProcess:
    return served[0]


@pytest.fixture
def tokens(served: tuple[ServerProcess, TokenFactory]) -> TokenFactory:
    return served[1]


def connect(server: ServerProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=CUT_WITHIN + 5)
    return sock


def read_until_closed(sock: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    started = time.monotonic()
    received = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return received, time.monotonic() - started
        received += chunk


def error_of(response: bytes) -> dict:
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), response
    return json.loads(body)["error"]


def test_a_connection_that_sends_nothing_is_closed(server: ServerProcess) -> None:
    with connect(server) as sock:
        received, waited = read_until_closed(sock)
    assert received == b""
    assert waited < CUT_WITHIN


def test_headers_that_never_end_get_408_naming_the_setting(server: ServerProcess) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: provenant\r\n")
        received, waited = read_until_closed(sock)
    assert waited < CUT_WITHIN
    error = error_of(received)
    assert error["code"] == "request_timeout"
    assert "PROVENANT_HEADER_READ_TIMEOUT (1 s)" in error["message"]


def test_headers_trickled_a_byte_at_a_time_are_cut_off_all_the_same(
    server: ServerProcess,
) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: provenant\r\nX-Slow: " + b"a" * 100
    with connect(server) as sock:
        started = time.monotonic()
        closed = False
        for byte in request:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                closed = True
                break
            time.sleep(0.1)
            if time.monotonic() - started > CUT_WITHIN + 2:
                break
        if not closed:
            received, _ = read_until_closed(sock)
            assert error_of(received)["code"] == "request_timeout"
        assert time.monotonic() - started < CUT_WITHIN + 2


@pytest.mark.parametrize("authorized", [True, False])
@pytest.mark.parametrize("path", ["/v1/attestations", "/k8s/validate", "/v1/evaluate"])
def test_a_body_that_never_ends_gets_408_naming_the_setting(
    server: ServerProcess, tokens: TokenFactory, path: str, authorized: bool
) -> None:
    scope = {"/v1/attestations": "upload", "/k8s/validate": "admission"}.get(path, "read")
    auth = tokens(scope)["Authorization"].encode() if authorized else b"Bearer nope"
    head = (
        (
            f"POST {path} HTTP/1.1\r\nHost: provenant\r\nContent-Type: application/json\r\n"
            "Content-Length: 100000\r\n"
        ).encode()
        + b"Authorization: "
        + auth
        + b"\r\n\r\n"
    )
    with connect(server) as sock:
        sock.sendall(head + b'{"a": "' + b"x" * 1000)
        received, waited = read_until_closed(sock)
    assert waited < CUT_WITHIN
    if received.startswith(b"HTTP/1.1 408 "):
        assert "PROVENANT_BODY_READ_TIMEOUT (1 s)" in error_of(received)["message"]
    else:
        # Refused before the body was read (401): the connection still does not stay open.
        assert not authorized and received.startswith(b"HTTP/1.1 401 "), received


def test_prompt_clients_are_served_on_a_kept_alive_connection(server: ServerProcess) -> None:
    with connect(server) as sock:
        for _ in range(3):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: provenant\r\n\r\n")
            response = b""
            while not response.endswith(b"}"):
                response += sock.recv(65536)
            assert response.startswith(b"HTTP/1.1 200 "), response
            time.sleep(DEADLINE / 2)
