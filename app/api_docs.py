"""The API reference at /docs (Swagger UI) and /redoc, working with no network.

FastAPI's own pages load their JavaScript and CSS from a CDN, which an air-gapped cluster cannot
reach: a blank page. Here the assets come from the ``fastapi-offline`` package (Swagger UI and
ReDoc builds, kept current by its maintainers) and are served by this service under
/docs/assets. The OpenAPI document also gets what FastAPI cannot infer: the bearer-token
security scheme (Swagger UI's Authorize button), the scope each operation needs, and request
bodies read by hand (uploads, AdmissionReviews).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

ASSETS = Path(fastapi_offline.__file__).parent / "static"
ASSETS_URL = "/docs/assets"
SECURITY_SCHEME = "bearerToken"
# Scope names a route needs, by dependency; ``any`` is any valid token.
ANY_TOKEN = "any"  # noqa: S105 - a scope name, not a secret


def install_docs(app: FastAPI) -> None:
    """Serve /docs, /docs/oauth2-redirect and /redoc from local assets (create the app with
    ``docs_url=None, redoc_url=None``). The OpenAPI document they show is built by
    ``app.openapi.install_openapi``, which starts from ``complete_openapi``."""
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title}: API reference",
            oauth2_redirect_url="/docs/oauth2-redirect",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
            swagger_ui_parameters={"persistAuthorization": True},
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title}: API reference",
            redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )


def api_routes(app: FastAPI) -> list[Any]:
    """Every documented API route, with its effective path and dependencies. FastAPI (0.16x)
    keeps included routers unflattened in ``app.routes``; its route contexts see through them."""
    try:
        from fastapi.routing import APIRoute as Route
        from fastapi.routing import iter_route_contexts
    except ImportError:  # an older FastAPI: routers were flattened into app.routes
        return [r for r in app.routes if isinstance(r, APIRoute) and r.include_in_schema]
    return [
        context
        for context in iter_route_contexts(app.routes)
        if isinstance(context.original_route, Route) and context.include_in_schema
    ]


def route_scope(route: Any) -> str | None:
    """The scope a route's dependencies demand (``require(Scope.X)`` marks its dependency with
    ``required_scope``), ``any`` for any valid token, None for an open route."""
    pending = [route.dependant]
    while pending:
        dependant = pending.pop()
        scope = getattr(dependant.call, "required_scope", None)
        if scope is not None:
            return str(getattr(scope, "value", scope))
        pending.extend(dependant.dependencies)
    return None


def complete_openapi(app: FastAPI) -> dict[str, Any]:
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    schema.setdefault("components", {})["securitySchemes"] = {
        SECURITY_SCHEME: {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token (`provenant token create --name NAME --scope SCOPE`); "
            "each operation names the scope it needs, and `admin` has them all",
        }
    }
    for route in api_routes(app):
        scope = route_scope(route)
        if scope is None:
            continue
        for method in route.methods:
            operation = schema["paths"].get(route.path_format, {}).get(method.lower())
            if operation is None:
                continue
            operation["security"] = [{SECURITY_SCHEME: []}]
            operation["x-required-scope"] = scope
            needs = "any valid token" if scope == ANY_TOKEN else f"a token with the `{scope}` scope"
            note = f"**Needs {needs}** (`admin` has every scope)."
            operation["description"] = f"{note}\n\n{operation.get('description', '')}".strip()
    return schema


def scopes_by_operation(app: FastAPI) -> dict[str, str | None]:
    """``"GET /v1/decisions" -> "read"`` for every documented operation (the README's table is
    checked against this)."""
    result: dict[str, str | None] = {}
    for route in api_routes(app):
        for method in sorted(set(route.methods) - {"HEAD"}):
            result[f"{method} {route.path_format}"] = route_scope(route)
    return result
