from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel


class Scope(StrEnum):
    UPLOAD = "upload"
    READ = "read"
    ADMISSION = "admission"
    ADMIN = "admin"


class TokenInfo(BaseModel):
    name: str
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None


class Principal(BaseModel):
    """Who made a request: recorded as the actor of audit events."""

    name: str
    scopes: frozenset[str]

    def allows(self, scope: Scope) -> bool:
        # admin is the superuser scope: it may do anything the others may.
        return scope.value in self.scopes or Scope.ADMIN.value in self.scopes
