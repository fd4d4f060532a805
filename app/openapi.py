"""The OpenAPI document, saying what the server actually answers.

FastAPI documents a 422 ``HTTPValidationError`` for every route with parameters, while this
API answers request validation with 400 and ``{"error": {...}}`` (app/errors.py), and it knows
nothing of the bodies read by ``app.request_body.json_body`` or of the statuses routes raise
through ``ApiError``. Here every operation gets the error responses it can give:

- 400 everywhere: a malformed parameter or body, or NUL in the URL (app/request_guard.py);
- 401 and 403 where a token is required (every route but the probes);
- 404 where the path names something;
- 413 and 422 where a body is read (a limit exceeded; JSON refused or content rejected).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema

from app.api_docs import SECURITY_SCHEME, complete_openapi
from app.request_body import REQUEST_MODELS

# The probes; every other operation needs a bearer token (app/auth/dependencies.py).
PUBLIC_PATHS = frozenset({"/healthz", "/readyz"})


class ErrorDetail(BaseModel):
    code: str = Field(description="stable, machine-readable: branch on this")
    message: str = Field(description="for humans: what was wrong")
    details: Any = Field(default=None, description="structured context; shape depends on code")


class ErrorBody(BaseModel):
    error: ErrorDetail


_ERRORS = {
    "400": "malformed request: a parameter or the body is invalid (error.code says which)",
    "401": "no valid bearer token",
    "403": "the token lacks the scope this operation needs",
    "404": "nothing by that name",
    "413": "the body exceeds a size or count limit (error.details names the setting)",
    "422": "the body was read but refused: JSON limits, repeated keys, unstorable text, "
    "or failed verification (error.code says which)",
}


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def build(app: FastAPI) -> dict[str, Any]:
    # Security scheme and each operation's scope come from the API reference's own completion.
    schema = complete_openapi(app)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    models: list[type[BaseModel]] = [ErrorBody, *REQUEST_MODELS.values()]
    _, definitions = models_json_schema(
        [(model, "validation") for model in models], ref_template="#/components/schemas/{model}"
    )
    components.update(definitions.get("$defs", {}))
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    error_ref = {"$ref": "#/components/schemas/ErrorBody"}
    for path, item in schema.get("paths", {}).items():
        for operation in item.values():
            responses = operation.setdefault("responses", {})
            statuses = ["400"]
            if path not in PUBLIC_PATHS:
                operation.setdefault("security", [{SECURITY_SCHEME: []}])
                statuses += ["401", "403"]
            if "{" in path:
                statuses.append("404")
            if "requestBody" in operation:
                statuses += ["413", "422"]
            if "422" in responses and "HTTPValidationError" in str(responses["422"]):
                del responses["422"]
            for status in statuses:
                entry = responses.setdefault(status, {"description": _ERRORS[status]})
                entry.setdefault("content", {"application/json": {"schema": error_ref}})
            for status, entry in responses.items():
                if status >= "400" and "content" not in entry:
                    entry["content"] = {"application/json": {"schema": error_ref}}
    return schema
