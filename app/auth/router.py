from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from app.auth.dependencies import authenticated, require
from app.auth.schemas import Principal, Scope, TokenInfo
from app.auth.service import list_tokens

router = APIRouter(prefix="/v1", tags=["auth"])


@router.get("/whoami")
def whoami(principal: Annotated[Principal, Depends(authenticated)]) -> dict[str, object]:
    """The calling token's name and scopes: a cheap way for CI to check its token."""
    return {"name": principal.name, "scopes": sorted(principal.scopes)}


@router.get("/tokens", response_model=list[TokenInfo])
def tokens(
    request: Request, _principal: Annotated[Principal, Depends(require(Scope.ADMIN))]
) -> list[TokenInfo]:
    with request.app.state.db.session() as session:
        return list_tokens(session)
