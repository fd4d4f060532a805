"""Who may ask for admission decisions: a bearer token with the ``admission`` scope, or a client
certificate issued by ``PROVENANT_CLIENT_CA_FILE`` (how kube-apiserver identifies itself to
webhooks). A certificate grants the admission scope and nothing else."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import Request

from app.auth.dependencies import require_async
from app.auth.schemas import Principal, Scope
from app.errors import ApiError

_admission_token = require_async(Scope.ADMISSION)


def certificate_principal(scope: Mapping[str, Any]) -> Principal | None:
    """The principal of a client certificate the TLS layer verified (the ASGI TLS extension,
    which ``app.admission.tlsproto`` fills in from the connection itself)."""
    tls = (scope.get("extensions") or {}).get("tls")
    if not isinstance(tls, Mapping) or tls.get("client_cert_error") is not None:
        return None
    chain = tls.get("client_cert_chain")
    if not chain:
        return None
    name = tls.get("client_cert_name") or "unnamed"
    return Principal(name=f"x509:{name}", scopes=frozenset({Scope.ADMISSION.value}))


async def webhook_caller(request: Request) -> Principal:
    """A token, when one is sent (a bad token is refused, whatever certificate came with it);
    else a verified client certificate, when a client CA is configured."""
    if request.headers.get("authorization"):
        return await _admission_token(request)
    if request.app.state.settings.client_ca_file is not None:
        principal = certificate_principal(request.scope)
        if principal is not None:
            request.state.principal = principal
            return principal
    raise ApiError(
        401,
        "unauthenticated",
        "send 'Authorization: Bearer <token>' with a token of scope 'admission', or a client "
        "certificate issued by the CA in PROVENANT_CLIENT_CA_FILE",
    )


# A token with the admission scope, or a client certificate (see the API reference).
webhook_caller.required_scope = Scope.ADMISSION  # type: ignore[attr-defined]
