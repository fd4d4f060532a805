"""Creating, listing, revoking and checking API tokens."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit.service import record_event
from app.auth.models import ApiToken
from app.auth.schemas import Principal, Scope, TokenInfo

TOKEN_PREFIX = "prv_"  # noqa: S105 - a prefix, not a secret


class TokenError(ValueError):
    pass


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, name: str, scopes: list[str], *, actor: str = "cli") -> str:
    """Create a token and return it: only its hash is stored, so this is the one time to see it."""
    name = name.strip()
    if not name:
        raise TokenError("token name must not be empty")
    valid = {s.value for s in Scope}
    unknown = sorted(set(scopes) - valid)
    if unknown or not scopes:
        raise TokenError(
            f"unknown scope(s) {', '.join(unknown)}; choose from {', '.join(sorted(valid))}"
            if unknown
            else f"at least one scope is required; choose from {', '.join(sorted(valid))}"
        )
    if session.scalar(select(ApiToken.id).where(ApiToken.name == name)) is not None:
        raise TokenError(f"a token named {name!r} already exists")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiToken(
            name=name,
            token_hash=hash_token(token),
            scopes=sorted(set(scopes)),
            created_at=datetime.now(UTC),
        )
    )
    record_event(session, "token.created", actor, {"name": name, "scopes": sorted(set(scopes))})
    return token


def list_tokens(session: Session) -> list[TokenInfo]:
    rows = session.scalars(select(ApiToken).order_by(ApiToken.name)).all()
    return [
        TokenInfo(name=r.name, scopes=r.scopes, created_at=r.created_at, revoked_at=r.revoked_at)
        for r in rows
    ]


def revoke_token(session: Session, name: str, *, actor: str = "cli") -> None:
    row = session.scalar(select(ApiToken).where(ApiToken.name == name))
    if row is None:
        raise TokenError(f"no token named {name!r}")
    if row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
        record_event(session, "token.revoked", actor, {"name": name})


def authenticate(session: Session, token: str) -> Principal | None:
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if row is None or row.revoked_at is not None:
        return None
    return Principal(name=row.name, scopes=frozenset(row.scopes))
