"""FastAPI dependencies that turn ``Authorization: Bearer`` into a Principal with a scope."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request

from app.auth.cache import TokenCache
from app.auth.schemas import Principal, Scope
from app.auth.service import authenticate, hash_token
from app.errors import ApiError


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401,
            "unauthenticated",
            "missing bearer token: send 'Authorization: Bearer <token>' "
            "(create one with 'provenant token create')",
        )
    return token.strip()


def authenticated(request: Request) -> Principal:
    """Any valid token."""
    token = _bearer(request)
    cache: TokenCache = request.app.state.token_cache
    key = hash_token(token)
    principal = cache.get(key)
    if principal is None:
        with request.app.state.db.session() as session:
            principal = authenticate(session, token)
        if principal is not None:
            cache.put(key, principal)
    if principal is None:
        raise ApiError(401, "unauthenticated", "invalid or revoked token")
    request.state.principal = principal
    return principal


def require(scope: Scope) -> Callable[[Request], Principal]:
    def dependency(request: Request) -> Principal:
        principal = authenticated(request)
        if not principal.allows(scope):
            raise ApiError(
                403,
                "forbidden",
                f"token {principal.name!r} lacks scope {scope.value!r}",
                {"required_scope": scope.value, "token_scopes": sorted(principal.scopes)},
            )
        return principal

    return dependency
