"""The real server process, started with ``provenant serve`` and reached over a socket."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_tls_pair(directory: Path) -> tuple[Path, Path]:
    """A self-signed serving certificate for 127.0.0.1/localhost; the cert is its own CA file."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "provenant-test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class ServerProcess:
    def __init__(
        self,
        database_url: str,
        policy_dir: Path,
        workdir: Path,
        *,
        tls: bool = False,
        env: dict[str, str] | None = None,
        cwd: Path = REPO,
        user: int | None = None,
        python: str = sys.executable,
    ) -> None:
        self.port = free_port()
        self.cwd = cwd
        self.user = user  # run as this uid and its group (needs root), as the image does
        self.python = python
        self.workdir = workdir
        self.tls_files = write_tls_pair(workdir) if tls else None
        scheme = "https" if tls else "http"
        self.base_url = f"{scheme}://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "PROVENANT_DATABASE_URL": database_url,
            "PROVENANT_POLICY_DIR": str(policy_dir),
            "PROVENANT_LOG_LEVEL": "warning",
            "PROVENANT_AUDIT_KEY_FILE": str(workdir / "audit-key.pem"),
            **(env or {}),
        }
        self.log_path = workdir / f"server-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def verify(self) -> ssl.SSLContext | bool:
        return ssl.create_default_context(cafile=str(self.tls_files[0])) if self.tls_files else True

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, verify=self.verify, timeout=30, **kwargs)

    def start(self, timeout: float = 120) -> ServerProcess:
        """Return once /readyz answers 200; fail at once if the process exits. The timeout is
        only a backstop: a loaded machine (2 cores, other suites) can take tens of seconds."""
        args = [self.python, "-m", "app.cli", "serve", "--port", str(self.port)]
        if self.tls_files:
            args += ["--tls-cert", str(self.tls_files[0]), "--tls-key", str(self.tls_files[1])]
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            args,
            cwd=self.cwd,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            user=self.user,
            group=self.user,
            extra_groups=[] if self.user is not None else None,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                # Ready, not merely listening: policies loaded, database and recorder up.
                with self.client() as client:
                    if client.get("/readyz").status_code == 200:
                        return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not become ready in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
