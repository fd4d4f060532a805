"""FastAPI dependencies that turn ``Authorization: Bearer`` into a Principal with a scope."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from fastapi import Request
from fastapi.concurrency import run_in_threadpool

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


def _check_scope(principal: Principal, scope: Scope) -> Principal:
    if not principal.allows(scope):
        raise ApiError(
            403,
            "forbidden",
            f"token {principal.name!r} lacks scope {scope.value!r}",
            {"required_scope": scope.value, "token_scopes": sorted(principal.scopes)},
        )
    return principal


# The API reference reads these marks to document which scope each operation needs.
authenticated.required_scope = "any"  # type: ignore[attr-defined]


@functools.cache  # one callable per scope, so FastAPI resolves it once per request
def require(scope: Scope) -> Callable[[Request], Principal]:
    def dependency(request: Request) -> Principal:
        return _check_scope(authenticated(request), scope)

    dependency.required_scope = scope  # type: ignore[attr-defined]
    return dependency


def require_async(scope: Scope) -> Callable[[Request], Awaitable[Principal]]:
    """``require`` for hot async routes: a token the cache knows is checked on the event loop
    (a sync dependency costs a worker-thread round trip per request); only a cache miss goes to
    a thread for its database read."""
    checked = require(scope)

    async def dependency(request: Request) -> Principal:
        cache: TokenCache = request.app.state.token_cache
        principal = cache.get(hash_token(_bearer(request)))
        if principal is None:
            return await run_in_threadpool(checked, request)
        request.state.principal = principal
        return _check_scope(principal, scope)

    dependency.required_scope = scope  # type: ignore[attr-defined]
    return dependency
