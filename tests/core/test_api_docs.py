"""/docs and /redoc need no network; the OpenAPI document says how to authenticate, which scope
each operation needs, and what each request body is; the README's endpoint table agrees."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

from app.api_docs import ASSETS_URL, scopes_by_operation

REPO = Path(__file__).resolve().parents[2]


def test_docs_pages_load_their_assets_from_the_service(client: TestClient) -> None:
    for page in ("/docs", "/redoc"):
        html = client.get(page)
        assert html.status_code == 200
        urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html.text)
        assets = [u for u in urls if u.endswith((".js", ".css"))]
        assert assets, html.text
        for url in assets:
            assert url.startswith(ASSETS_URL + "/"), f"{page} loads {url} from elsewhere"
            served = client.get(url)
            assert served.status_code == 200 and len(served.content) > 10_000, url
        assert "cdn" not in html.text.lower() and "fonts.googleapis" not in html.text


def test_openapi_has_a_bearer_scheme_and_the_scope_of_every_operation(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["bearerToken"] == {
        "type": "http",
        "scheme": "bearer",
        "description": spec["components"]["securitySchemes"]["bearerToken"]["description"],
    }
    open_operations = {"GET /healthz", "GET /readyz"}
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            key = f"{method.upper()} {path}"
            if key in open_operations:
                assert "security" not in operation
                continue
            assert operation["security"] == [{"bearerToken": []}], key
            assert operation["x-required-scope"] in {
                "any",
                "upload",
                "read",
                "admission",
                "admin",
            }, key


def test_every_request_body_is_described(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    bodiless = {"POST /v1/policies:reload"}
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method in ("post", "put", "patch") and f"POST {path}" not in bodiless:
                assert "requestBody" in operation, f"{method.upper()} {path}"
    upload = spec["paths"]["/v1/attestations"]["post"]["requestBody"]
    assert {"application/json", "application/jsonl", "application/octet-stream"} <= set(
        upload["content"]
    )


def test_readme_endpoint_table_names_each_operations_scope(app) -> None:
    """Each row of the README's API table: `METHOD /path` cells and the scope column."""
    table: dict[str, str] = {}
    for line in (REPO / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        for method, path in re.findall(r"`(GET|POST|PUT|DELETE) ([^`?]+)[^`]*`", cells[0]):
            table[f"{method} {path}"] = cells[1]
    actual = scopes_by_operation(app)
    for operation, scope in actual.items():
        assert operation in table, f"README's API table lacks {operation}"
        expected = {None: "none", "any": "any token"}.get(scope, scope)
        assert table[operation] == expected, f"{operation}: README says {table[operation]!r}"
    assert set(table) <= set(actual), set(table) - set(actual)
