"""A uvicorn HTTP protocol that tells the app which client certificate the TLS layer verified.

uvicorn verifies client certificates (``ssl_ca_certs`` with ``ssl_cert_reqs``) but does not
put them in the ASGI scope. This protocol adds the ASGI TLS extension
(``scope["extensions"]["tls"]``) for every request of a connection, from the connection's own
``ssl_object``, so nothing a client sends (headers, say) can pose as a certificate. Only a
certificate the handshake verified is reported: with ``CERT_OPTIONAL``, a presented certificate
that does not chain to the configured CA fails the handshake, and ``getpeercert()`` is empty
for an unverified one.

``provenant serve`` hands it to uvicorn (``http=``) when a client CA is configured.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from app.slow_clients import SlowClientProtocol

# ASGI TLS extension: tls_version is the TLS wire number.
_TLS_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


def tls_extension(ssl_object: ssl.SSLObject) -> dict[str, Any]:
    client_chain: list[str] = []
    client_name: str | None = None
    if ssl_object.getpeercert():  # non-empty only when the handshake verified it
        der = ssl_object.getpeercert(binary_form=True)
        if der:
            from cryptography import x509

            certificate = x509.load_der_x509_certificate(der)
            client_chain = [ssl.DER_cert_to_PEM_cert(der)]
            client_name = certificate.subject.rfc4514_string()
    return {
        "server_cert": None,
        "client_cert_chain": client_chain,
        "client_cert_name": client_name,
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(ssl_object.version() or ""),
        "cipher_suite": None,
    }


def _with_tls(app: Any, tls: dict[str, Any]) -> Any:
    async def app_with_tls(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") in ("http", "websocket"):
            scope = {**scope, "extensions": {**(scope.get("extensions") or {}), "tls": tls}}
        await app(scope, receive, send)

    return app_with_tls


class PeerCertProtocol(SlowClientProtocol):
    """uvicorn's HTTP/1.1 protocol (with the slow-client deadlines) plus the TLS extension in
    every request's scope."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            # One protocol instance per connection: wrapping its app scopes the extension to
            # exactly this connection's requests.
            self.app = _with_tls(self.app, tls_extension(ssl_object))
