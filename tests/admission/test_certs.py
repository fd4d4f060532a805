"""`provenant webhook certs`: the CA, the serving certificate kube-apiserver checks against the
caBundle, the optional client certificate, and `provenant serve` over HTTPS with them."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import shutil
import socket
import ssl
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError
from typer.testing import CliRunner

from app.admission.certs import CertificateError, webhook_dns_names, write_webhook_certs
from app.admission.cli import webhook_cli
from tests.server import REPO, ServerProcess

SERVICE, NAMESPACE = "provenant", "provenant-system"
NAMES = [
    "provenant",
    "provenant.provenant-system",
    "provenant.provenant-system.svc",
    "provenant.provenant-system.svc.cluster.local",
]


def run_certs(out: Path, *extra: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        webhook_cli,
        ["certs", "--service", SERVICE, "--namespace", NAMESPACE, "--out", str(out), *extra],
    )
    return result.exit_code, result.stdout, result.stderr


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def server_verifier(ca: x509.Certificate, name: x509.GeneralName):
    store = Store([ca])
    return PolicyBuilder().store(store).build_server_verifier(name)


@pytest.fixture
def certs(tmp_path: Path) -> tuple[Path, str]:
    out = tmp_path / "certs"
    code, stdout, stderr = run_certs(out, "--ip", "127.0.0.1")
    assert code == 0, stderr
    return out, stdout


def test_serving_certificate_names_every_service_name(certs: tuple[Path, str]) -> None:
    out, _ = certs
    cert = load(out / "tls.crt")
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == NAMES
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.public_key().curve.name == "secp256r1"


def test_ca_verifies_the_serving_certificate_for_each_name(certs: tuple[Path, str]) -> None:
    out, _ = certs
    ca, leaf = load(out / "ca.crt"), load(out / "tls.crt")
    leaf.verify_directly_issued_by(ca)
    for name in NAMES:
        chain = server_verifier(ca, x509.DNSName(name)).verify(leaf, [])
        assert chain[-1] == ca
    server_verifier(ca, x509.IPAddress(ipaddress.ip_address("127.0.0.1"))).verify(leaf, [])
    with pytest.raises(VerificationError):
        server_verifier(ca, x509.DNSName("other.provenant-system.svc")).verify(leaf, [])
    # Another run makes another CA, which must not vouch for this certificate.
    code, _, _ = run_certs(out.parent / "other")
    assert code == 0
    with pytest.raises(VerificationError):
        server_verifier(load(out.parent / "other" / "ca.crt"), x509.DNSName(NAMES[2])).verify(
            leaf, []
        )


def test_validity(tmp_path: Path) -> None:
    out = tmp_path / "certs"
    code, _, stderr = run_certs(out, "--days", "30", "--ca-days", "400")
    assert code == 0, stderr
    now = dt.datetime.now(dt.UTC)
    leaf, ca = load(out / "tls.crt"), load(out / "ca.crt")
    assert leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc
    assert abs(leaf.not_valid_after_utc - (now + dt.timedelta(days=30))) < dt.timedelta(minutes=1)
    assert abs(ca.not_valid_after_utc - (now + dt.timedelta(days=400))) < dt.timedelta(minutes=1)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    # A leaf never outlives its CA.
    code, _, _ = run_certs(tmp_path / "short-ca", "--days", "900", "--ca-days", "10")
    assert code == 0
    short = load(tmp_path / "short-ca" / "tls.crt")
    assert short.not_valid_after_utc == load(tmp_path / "short-ca" / "ca.crt").not_valid_after_utc
    assert run_certs(tmp_path / "zero", "--days", "0")[0] != 0


def test_keys_are_private_and_certificates_readable(certs: tuple[Path, str]) -> None:
    out, _ = certs
    for name in ("ca.key", "tls.key"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600, name
        assert (out / name).read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    for name in ("ca.crt", "tls.crt"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o644, name
    assert sorted(p.name for p in out.iterdir()) == ["ca.crt", "ca.key", "tls.crt", "tls.key"]


def test_stdout_is_the_ca_bundle_alone(certs: tuple[Path, str]) -> None:
    out, stdout = certs
    assert stdout.endswith("\n") and stdout.count("\n") == 1
    assert base64.b64decode(stdout.strip(), validate=True) == (out / "ca.crt").read_bytes()


def test_client_certificate_for_the_apiserver(tmp_path: Path) -> None:
    out = tmp_path / "certs"
    code, _, stderr = run_certs(out, "--client-cert", "kube-apiserver")
    assert code == 0, stderr
    assert stat.S_IMODE((out / "client.key").stat().st_mode) == 0o600
    ca, client = load(out / "ca.crt"), load(out / "client.crt")
    client.verify_directly_issued_by(ca)
    common_name = client.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    assert common_name == "kube-apiserver"
    eku = client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    verifier = PolicyBuilder().store(Store([ca])).build_client_verifier()
    assert verifier.verify(client, []).chain[-1] == ca


def test_existing_files_are_kept_unless_asked(tmp_path: Path) -> None:
    out = tmp_path / "certs"
    _, first_bundle, _ = run_certs(out)
    first_leaf = (out / "tls.crt").read_bytes()
    code, stdout, stderr = run_certs(out)
    assert code == 2 and stdout == ""
    assert "--renew" in stderr and "--force" in stderr
    assert (out / "tls.crt").read_bytes() == first_leaf
    # --renew: same CA (the caBundle in the cluster stays valid), new serving certificate.
    code, renewed_bundle, stderr = run_certs(out, "--renew")
    assert code == 0, stderr
    assert renewed_bundle == first_bundle
    assert (out / "tls.crt").read_bytes() != first_leaf
    load(out / "tls.crt").verify_directly_issued_by(load(out / "ca.crt"))
    # --force: a new CA.
    code, forced_bundle, _ = run_certs(out, "--force")
    assert code == 0 and forced_bundle != first_bundle
    assert run_certs(out, "--force", "--renew")[0] == 2


def test_bad_input_is_refused(tmp_path: Path) -> None:
    for args in (
        ["--service", "Provenant", "--namespace", "ns"],
        ["--service", "provenant", "--namespace", "-ns"],
        ["--service", "a" * 64, "--namespace", "ns"],
    ):
        result = CliRunner().invoke(webhook_cli, ["certs", *args, "--out", str(tmp_path / "x")])
        assert result.exit_code == 2, result.output
        assert "DNS label" in result.stderr
    code, _, stderr = run_certs(tmp_path / "y", "--ip", "not-an-ip")
    assert code == 2 and "not an IP address" in stderr
    assert not (tmp_path / "x").exists()
    with pytest.raises(CertificateError):
        write_webhook_certs(tmp_path / "z", SERVICE, NAMESPACE, renew=True)  # no CA to renew


def test_dns_names() -> None:
    assert list(webhook_dns_names(SERVICE, NAMESPACE)) == NAMES


def test_module_entry_point(tmp_path: Path) -> None:
    """`python -m app.admission.cli` (what the main command mounts as `provenant webhook`)."""
    out = tmp_path / "certs"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "app.admission.cli",
            "certs",
            "--service",
            SERVICE,
            "--namespace",
            NAMESPACE,
            "--out",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert base64.b64decode(done.stdout.strip()) == (out / "ca.crt").read_bytes()


class CertServer(ServerProcess):
    """The real server with the files `provenant webhook certs` wrote."""

    def __init__(self, database_url: str, policy_dir: Path, workdir: Path, certs: Path) -> None:
        super().__init__(database_url, policy_dir, workdir, tls=False)
        self.tls_files = (certs / "tls.crt", certs / "tls.key")
        self.ca_file = certs / "ca.crt"
        self.base_url = f"https://127.0.0.1:{self.port}"

    @property
    def verify(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))


def get_over_tls(port: int, context: ssl.SSLContext, server_name: str, path: str) -> bytes:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=server_name) as tls,
    ):
        tls.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {server_name}\r\nConnection: close\r\n\r\n".encode()
        )
        chunks = []
        while chunk := tls.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.e2e
def test_serve_answers_healthz_over_https_with_these_certificates(
    tmp_path: Path, sqlite_template: Path, policy_dir: Path, certs: tuple[Path, str]
) -> None:
    out, bundle = certs
    db = tmp_path / "provenant.db"
    shutil.copy(sqlite_template, db)
    # The caBundle kube-apiserver gets is all a client needs to trust the server.
    ca_file = tmp_path / "ca-from-bundle.pem"
    ca_file.write_bytes(base64.b64decode(bundle))
    context = ssl.create_default_context(cafile=str(ca_file))
    with CertServer(f"sqlite:///{db}", policy_dir, tmp_path, out) as server:
        with server.client() as client:
            response = client.get("/healthz")
            assert response.status_code == 200
            assert response.json() == {"status": "ok"}
        for name in NAMES:  # what kube-apiserver dials: the Service's DNS names
            reply = get_over_tls(server.port, context, name, "/healthz")
            assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
            assert reply.endswith(b'{"status":"ok"}')
        # A client that trusts another CA refuses the connection.
        other = tmp_path / "other"
        assert run_certs(other)[0] == 0
        with (
            httpx.Client(
                verify=ssl.create_default_context(cafile=str(other / "ca.crt")), timeout=10
            ) as stranger,
            pytest.raises(httpx.ConnectError),
        ):
            stranger.get(f"{server.base_url}/healthz")
        # And a name the certificate does not carry is refused too.
        with pytest.raises(ssl.SSLCertVerificationError):
            get_over_tls(server.port, context, "provenant.default.svc", "/healthz")
