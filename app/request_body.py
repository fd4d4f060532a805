"""Reading a request body under a size limit, refusing as soon as the limit is known exceeded."""

# No "from __future__ import annotations": FastAPI must see json_body's annotations as objects
# (they name a dependency held in a closure).

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from app.errors import ApiError
from app.verification import strict_json
from app.verification.errors import MALFORMED, VerificationError


class BodyTooLarge(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(f"body of at least {size} bytes")
        self.size = size  # declared, or read so far when the limit was crossed


async def read_limited(request: Request, limit: int) -> bytes:
    """The body; BodyTooLarge when Content-Length or the bytes received exceed ``limit``."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(int(declared))
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(size)
        chunks.append(chunk)
    return b"".join(chunks)


M = TypeVar("M", bound=BaseModel)

# Models read by ``json_body``: FastAPI does not see them as bodies, so the OpenAPI document
# gets their schemas from here (app/openapi.py).
REQUEST_MODELS: dict[str, type[BaseModel]] = {}


def json_body(model: type[M], auth: Callable[..., Any]) -> Callable[..., Awaitable[M]]:
    """A dependency giving the request's JSON body as ``model``, read only once ``auth`` (a
    dependency) has accepted the caller, and never beyond PROVENANT_MAX_REQUEST_BYTES.

    FastAPI reads a declared body before it resolves any dependency, so an unauthenticated
    sender could make the server read and parse any amount; here the body is a dependency
    that depends on authentication. Declare the route with ``openapi_extra=request_body(model)``.
    """

    async def dependency(request: Request, _caller: Annotated[Any, Depends(auth)]) -> M:
        limit: int = request.app.state.settings.max_request_bytes
        try:
            raw = await read_limited(request, limit)
        except BodyTooLarge as exc:
            raise ApiError(
                413,
                "payload_too_large",
                f"the request body exceeds PROVENANT_MAX_REQUEST_BYTES ({limit} bytes)",
                {"limit": "PROVENANT_MAX_REQUEST_BYTES", "max": limit, "size": exc.size},
            ) from None
        try:
            data = strict_json.loads(raw, "the request body")
        except VerificationError as exc:
            status = 400 if exc.code == MALFORMED else 422
            raise ApiError(status, exc.code, exc.message, exc.details) from exc
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise RequestValidationError(
                [
                    {**error, "loc": ("body", *error["loc"])}
                    for error in exc.errors(include_url=False, include_input=False)
                ]
            ) from exc

    return dependency


def request_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` documenting a ``json_body`` route's body."""
    REQUEST_MODELS[model.__name__] = model
    schema = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}
