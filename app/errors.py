"""One error shape for every 4xx (and the rare 5xx): {"error": {"code", "message", "details"}}."""

from __future__ import annotations

import logging

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from app.db import DATABASE_UNAVAILABLE, RETRY_AFTER_SECONDS

log = logging.getLogger("provenant")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "too_many_requests",
}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: object = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def error_body(code: str, message: str, details: object = None) -> dict[str, object]:
    return {"error": {"code": code, "message": message, "details": details}}


def database_unavailable(exc: Exception) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """The 503 answer to a database outage (body, extra headers), logged in one line: during
    an outage every request fails alike, and a traceback each would drown the log."""
    log.warning("database unavailable: %s", str(exc).splitlines()[0] if str(exc) else exc)
    body = error_body(
        "database_unavailable",
        f"the database cannot be reached; retry in {RETRY_AFTER_SECONDS} s",
        {"retry_after": RETRY_AFTER_SECONDS},
    )
    return orjson.dumps(body), [(b"retry-after", str(RETRY_AFTER_SECONDS).encode())]


async def _database_unavailable(_request: Request, exc: Exception) -> Response:
    body, headers = database_unavailable(exc)
    return Response(
        body,
        503,
        headers={k.decode(): v.decode() for k, v in headers},
        media_type="application/json",
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(
            error_body(exc.code, exc.message, exc.details), exc.status, headers=headers
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return JSONResponse(error_body(code, message), exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"location": list(e.get("loc", ())), "message": e.get("msg", ""), "type": e.get("type")}
            for e in exc.errors()
        ]
        first = details[0] if details else {"location": [], "message": "invalid request"}
        where = ".".join(str(p) for p in first["location"])
        return JSONResponse(
            error_body("invalid_request", f"{where}: {first['message']}", details), 400
        )

    @app.exception_handler(ClientDisconnect)
    async def _client_gone(_request: Request, _exc: ClientDisconnect) -> JSONResponse:
        # The client hung up, or was cut off as too slow (app/slow_clients.py), while its body
        # was read: nobody receives this answer, but the metrics and the log say what happened.
        return JSONResponse(error_body("request_timeout", "the client did not send its body"), 408)

    for outage in DATABASE_UNAVAILABLE:
        app.add_exception_handler(outage, _database_unavailable)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Logged with its traceback for operators; the client sees only the error shape.
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body("internal_error", "internal error; see the server log"), 500)
