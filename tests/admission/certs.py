"""Throwaway X.509 for webhook client authentication: a CA and client certificates it issues,
made with the same code as ``provenant webhook certs``."""

from __future__ import annotations

from pathlib import Path

from app.admission.certs import create_ca, issue


class CertificateAuthority:
    def __init__(self, name: str) -> None:
        self.ca = create_ca(name, days=1)
        self.cert = self.ca.cert

    def write(self, path: Path) -> Path:
        path.write_bytes(self.ca.cert_pem)
        return path

    def issue_client(self, common_name: str, directory: Path) -> tuple[Path, Path]:
        """A client certificate (clientAuth) and its key, as PEM files in ``directory``."""
        client = issue(self.ca, common_name, server=False, days=1)
        cert_path = directory / f"{common_name}.crt"
        key_path = directory / f"{common_name}.key"
        cert_path.write_bytes(client.cert_pem)
        key_path.write_bytes(client.key_pem)
        return cert_path, key_path
