"""Small helpers shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations

import itertools

from app.auth.service import create_token
from app.db import Database

_counter = itertools.count()


class TokenFactory:
    """Creates real tokens in the test database: ``tokens("upload")`` -> bearer headers."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def __call__(self, *scopes: str, name: str | None = None) -> dict[str, str]:
        with self.db.session() as session:
            token = create_token(session, name or f"test-{next(_counter)}", list(scopes))
        return {"Authorization": f"Bearer {token}"}
