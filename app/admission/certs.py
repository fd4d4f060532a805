"""Certificates for the admission webhook: a private CA, the serving certificate, and optionally
a client certificate for kube-apiserver's webhook client identity.

kube-apiserver reaches the webhook through its Service as ``https://NAME.NS.svc``; it trusts
the server only through the ``caBundle`` of the ValidatingWebhookConfiguration, so the CA here
is private to this one webhook (never a cluster or public CA). Go ignores the Common Name, so
every name the apiserver may use is a DNS Subject Alternative Name. Keys are ECDSA P-256,
written mode 0600.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_CERT, CA_KEY = "ca.crt", "ca.key"
# The names of a kubernetes.io/tls Secret's keys, so `kubectl create secret tls` takes them as is.
SERVING_CERT, SERVING_KEY = "tls.crt", "tls.key"
CLIENT_CERT, CLIENT_KEY = "client.crt", "client.key"
# Backdated so that a node whose clock is a little behind still accepts a fresh certificate.
CLOCK_SKEW = dt.timedelta(minutes=5)


class CertificateError(Exception):
    """Bad input, or files that would be overwritten without being asked to."""


@dataclass(frozen=True)
class Issued:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


@dataclass(frozen=True)
class WebhookCerts:
    directory: Path
    ca: Issued
    serving: Issued
    client: Issued | None
    dns_names: tuple[str, ...]
    reused_ca: bool

    @property
    def ca_bundle(self) -> str:
        """What the webhook configuration's ``clientConfig.caBundle`` takes: base64 of the PEM."""
        return ca_bundle(self.ca.cert)

    def files(self) -> list[Path]:
        names = [CA_CERT, CA_KEY, SERVING_CERT, SERVING_KEY]
        if self.client is not None:
            names += [CLIENT_CERT, CLIENT_KEY]
        return [self.directory / name for name in names]


def webhook_dns_names(service: str, namespace: str) -> tuple[str, ...]:
    """Every name a client in the cluster may use for the Service, shortest first."""
    for label, value in (("service", service), ("namespace", namespace)):
        if not _is_dns_label(value):
            raise CertificateError(
                f"{label} {value!r} is not a DNS label (lowercase letters, digits and '-', "
                "at most 63 characters, starting and ending with a letter or digit)"
            )
    return (
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.cluster.local",
    )


def _is_dns_label(value: str) -> bool:
    return (
        0 < len(value) <= 63
        and value == value.lower()
        and value[0].isalnum()
        and value[-1].isalnum()
        and all(c.isascii() and (c.isalnum() or c == "-") for c in value)
    )


def ca_bundle(cert: x509.Certificate) -> str:
    return base64.b64encode(cert.public_bytes(serialization.Encoding.PEM)).decode("ascii")


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _validity(days: int, now: dt.datetime | None) -> tuple[dt.datetime, dt.datetime]:
    if days < 1:
        raise CertificateError(f"validity must be at least 1 day, not {days}")
    now = now or dt.datetime.now(dt.UTC)
    return now - CLOCK_SKEW, now + dt.timedelta(days=days)


def create_ca(common_name: str, *, days: int = 3650, now: dt.datetime | None = None) -> Issued:
    """A self-signed CA that may sign end-entity certificates only (path length 0)."""
    key = _new_key()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Provenant"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    not_before, not_after = _validity(days, now)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(key, cert)


def issue(
    ca: Issued,
    common_name: str,
    *,
    server: bool,
    dns_names: Iterable[str] = (),
    ip_addresses: Iterable[str] = (),
    days: int = 365,
    now: dt.datetime | None = None,
) -> Issued:
    """An end-entity certificate signed by ``ca``: for TLS servers (with SANs) or clients."""
    key = _new_key()
    not_before, not_after = _validity(days, now)
    # Never outlive the CA: a verifier would reject the chain from that day on anyway.
    not_after = min(not_after, ca.cert.not_valid_after_utc)
    sans: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
    for address in ip_addresses:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(address)))
        except ValueError as exc:
            raise CertificateError(f"{address!r} is not an IP address") from exc
    if server and not sans:
        raise CertificateError("a serving certificate needs at least one DNS name or IP address")
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Provenant"),
                    x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                ]
            )
        )
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return Issued(key, builder.sign(ca.key, hashes.SHA256()))


def load_ca(directory: Path) -> Issued:
    """The CA previously written to ``directory`` (to renew the leaves, keeping the caBundle)."""
    try:
        cert = x509.load_pem_x509_certificate((directory / CA_CERT).read_bytes())
        key = serialization.load_pem_private_key((directory / CA_KEY).read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise CertificateError(f"cannot load the CA from {directory}: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertificateError(f"{directory / CA_KEY} is not an ECDSA key")
    if key.public_key() != cert.public_key():
        raise CertificateError(f"{directory / CA_KEY} does not belong to {directory / CA_CERT}")
    return Issued(key, cert)


def write_webhook_certs(
    directory: Path,
    service: str,
    namespace: str,
    *,
    days: int = 365,
    ca_days: int = 3650,
    client_cert: str | None = None,
    extra_dns: Iterable[str] = (),
    ip_addresses: Iterable[str] = (),
    force: bool = False,
    renew: bool = False,
) -> WebhookCerts:
    """Write ``ca.crt``/``ca.key``, ``tls.crt``/``tls.key`` and, with ``client_cert``,
    ``client.crt``/``client.key`` into ``directory``.

    Existing files are never overwritten silently: ``renew`` keeps the CA found there (the
    caBundle stays valid) and reissues the leaf certificates; ``force`` starts over.
    """
    if force and renew:
        raise CertificateError("choose --renew (keep the CA) or --force (new CA), not both")
    dns_names = webhook_dns_names(service, namespace)
    dns_names += tuple(n for n in extra_dns if n not in dns_names)
    leaves = [SERVING_CERT, SERVING_KEY] + ([CLIENT_CERT, CLIENT_KEY] if client_cert else [])
    if renew:
        ca, reused = load_ca(directory), True
    else:
        existing = [n for n in [CA_CERT, CA_KEY, *leaves] if (directory / n).exists()]
        if existing and not force:
            raise CertificateError(
                f"{directory} already holds {', '.join(existing)}; use --renew to reissue the "
                "certificates with the same CA (the caBundle stays the same) or --force to "
                "replace everything (the webhook configuration then needs the new caBundle)"
            )
        ca, reused = create_ca(f"provenant-webhook-ca ({namespace}/{service})", days=ca_days), False
    serving = issue(
        ca, dns_names[2], server=True, dns_names=dns_names, ip_addresses=ip_addresses, days=days
    )
    client = None
    if client_cert:
        # Go checks a client certificate's chain, not its names; other verifiers want a SAN.
        names = [client_cert] if all(_is_dns_label(p) for p in client_cert.split(".")) else []
        client = issue(ca, client_cert, server=False, dns_names=names, days=days)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not reused:
        _write(directory / CA_KEY, ca.key_pem, private=True)
        _write(directory / CA_CERT, ca.cert_pem, private=False)
    _write(directory / SERVING_KEY, serving.key_pem, private=True)
    _write(directory / SERVING_CERT, serving.cert_pem, private=False)
    if client is not None:
        _write(directory / CLIENT_KEY, client.key_pem, private=True)
        _write(directory / CLIENT_CERT, client.cert_pem, private=False)
    return WebhookCerts(directory, ca, serving, client, dns_names, reused)


def _write(path: Path, data: bytes, *, private: bool) -> None:
    """Write through a temporary file and rename; keys are 0600 from the first byte on."""
    mode = 0o600 if private else 0o644
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)  # the umask may have taken bits away; never added
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
