from __future__ import annotations

import pytest
from sqlalchemy import select

from app.audit.models import AuditEvent
from app.auth.models import ApiToken
from app.auth.service import (
    TokenError,
    authenticate,
    create_token,
    hash_token,
    list_tokens,
    revoke_token,
)
from app.db import Database


def test_token_is_stored_hashed_and_authenticates(db: Database) -> None:
    with db.session() as s:
        token = create_token(s, "ci", ["upload", "read"])
    with db.session() as s:
        row = s.scalar(select(ApiToken))
        assert row is not None
        assert row.token_hash == hash_token(token)
        assert token not in (row.token_hash, row.name)
        principal = authenticate(s, token)
    assert principal is not None
    assert principal.name == "ci"
    assert principal.scopes == {"upload", "read"}


def test_revoked_and_unknown_tokens_do_not_authenticate(db: Database) -> None:
    with db.session() as s:
        token = create_token(s, "ci", ["read"])
    with db.session() as s:
        revoke_token(s, "ci")
    with db.session() as s:
        assert authenticate(s, token) is None
        assert authenticate(s, token + "x") is None
        assert list_tokens(s)[0].revoked_at is not None


@pytest.mark.parametrize(
    ("name", "scopes", "message"),
    [
        ("", ["read"], "empty"),
        ("x", [], "at least one scope"),
        ("x", ["root"], "unknown scope"),
    ],
)
def test_bad_token_requests_are_refused(
    db: Database, name: str, scopes: list[str], message: str
) -> None:
    with db.session() as s, pytest.raises(TokenError, match=message):
        create_token(s, name, scopes)


def test_duplicate_name_and_unknown_revoke(db: Database) -> None:
    with db.session() as s:
        create_token(s, "ci", ["read"])
    with db.session() as s, pytest.raises(TokenError, match="already exists"):
        create_token(s, "ci", ["read"])
    with db.session() as s, pytest.raises(TokenError, match="no token"):
        revoke_token(s, "nope")


def test_token_changes_are_audit_events(db: Database) -> None:
    with db.session() as s:
        create_token(s, "ci", ["read"])
    with db.session() as s:
        revoke_token(s, "ci")
    with db.session() as s:
        types = s.scalars(select(AuditEvent.type).order_by(AuditEvent.seq)).all()
    assert types == ["token.created", "token.revoked"]
