"""Keys, the test Fulcio CA, Fulcio-style leaf certificates and their embedded SCTs."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from tests.sigstore_stack import _der

# Wide CA windows: tests sign "now" or at any fixed instant they choose, and a trust root must
# not start failing when the suite runs in some later year.
CA_NOT_BEFORE = datetime(2020, 1, 1, tzinfo=UTC)
CA_NOT_AFTER = datetime(2100, 1, 1, tzinfo=UTC)

SCT_LIST_OID = ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")
FULCIO_ISSUER_V1_OID = "1.3.6.1.4.1.57264.1.1"
FULCIO_ISSUER_V2_OID = "1.3.6.1.4.1.57264.1.8"

FULCIO_EXTENSION_OIDS: dict[str, str] = {
    # Names follow Fulcio's docs/oid-info.md and its certificate.Extensions JSON fields.
    "issuerV1": "1.3.6.1.4.1.57264.1.1",
    "githubWorkflowTrigger": "1.3.6.1.4.1.57264.1.2",
    "githubWorkflowSHA": "1.3.6.1.4.1.57264.1.3",
    "githubWorkflowName": "1.3.6.1.4.1.57264.1.4",
    "githubWorkflowRepository": "1.3.6.1.4.1.57264.1.5",
    "githubWorkflowRef": "1.3.6.1.4.1.57264.1.6",
    "issuer": "1.3.6.1.4.1.57264.1.8",
    "buildSignerURI": "1.3.6.1.4.1.57264.1.9",
    "buildSignerDigest": "1.3.6.1.4.1.57264.1.10",
    "runnerEnvironment": "1.3.6.1.4.1.57264.1.11",
    "sourceRepositoryURI": "1.3.6.1.4.1.57264.1.12",
    "sourceRepositoryDigest": "1.3.6.1.4.1.57264.1.13",
    "sourceRepositoryRef": "1.3.6.1.4.1.57264.1.14",
    "sourceRepositoryIdentifier": "1.3.6.1.4.1.57264.1.15",
    "sourceRepositoryOwnerURI": "1.3.6.1.4.1.57264.1.16",
    "sourceRepositoryOwnerIdentifier": "1.3.6.1.4.1.57264.1.17",
    "buildConfigURI": "1.3.6.1.4.1.57264.1.18",
    "buildConfigDigest": "1.3.6.1.4.1.57264.1.19",
    "buildTrigger": "1.3.6.1.4.1.57264.1.20",
    "runInvocationURI": "1.3.6.1.4.1.57264.1.21",
    "sourceRepositoryVisibilityAtSigning": "1.3.6.1.4.1.57264.1.22",
}
# Fulcio's first extensions (.1 to .6) hold the raw string bytes; everything from .8 on is a
# DER UTF8String. Verifiers decode them differently, so the encoding must follow the OID.
_LEGACY_RAW_OIDS = frozenset(f"1.3.6.1.4.1.57264.1.{n}" for n in range(1, 7))
_NAME_TO_OID = {name.lower(): dotted for name, dotted in FULCIO_EXTENSION_OIDS.items()}

_CURVE_ORDERS: dict[type[ec.EllipticCurve], int] = {
    ec.SECP256R1: int("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16),
    ec.SECP384R1: int(
        "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973",
        16,
    ),
}


def derive_ec_key(label: str, curve: ec.EllipticCurve) -> ec.EllipticCurvePrivateKey:
    """A private key fixed by ``label``: same seed, same trust root in every process."""
    order = _CURVE_ORDERS[type(curve)]
    scalar = int.from_bytes(hashlib.sha512(label.encode()).digest(), "big") % (order - 1) + 1
    return ec.derive_private_key(scalar, curve)


def spki_der(public_key: PublicKeyTypes) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_id(public_key: PublicKeyTypes) -> bytes:
    """SHA-256 of the SubjectPublicKeyInfo: how Sigstore names CT logs, Rekor logs and issuers."""
    return hashlib.sha256(spki_der(public_key)).digest()


def _serial(label: str) -> int:
    return int.from_bytes(hashlib.sha256(label.encode()).digest()[:19], "big") | 1


def _name(organization: str, common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def signing_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def make_root(label: str, key: ec.EllipticCurvePrivateKey, subject: x509.Name) -> x509.Certificate:
    """A self-signed CA root (critical BasicConstraints and KeyUsage, SKI/AKI, as webpki wants)."""
    public_key = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public_key)
        .serial_number(_serial(label))
        .not_valid_before(CA_NOT_BEFORE)
        .not_valid_after(CA_NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key), critical=False
        )
        .sign(key, _hash_for(key), ecdsa_deterministic=True)
    )


def make_intermediate(
    label: str,
    key: ec.EllipticCurvePrivateKey,
    subject: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    issuer_cert: x509.Certificate,
) -> x509.Certificate:
    public_key = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject)
        .public_key(public_key)
        .serial_number(_serial(label))
        .not_valid_before(CA_NOT_BEFORE)
        .not_valid_after(CA_NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
        .sign(issuer_key, _hash_for(issuer_key), ecdsa_deterministic=True)
    )


def _hash_for(key: ec.EllipticCurvePrivateKey) -> hashes.SHA256 | hashes.SHA384:
    return hashes.SHA384() if key.curve.key_size == 384 else hashes.SHA256()


@dataclass(frozen=True)
class FulcioCA:
    """A two-level Fulcio-like CA: P-384 root and intermediate, the intermediate issues leaves."""

    root_key: ec.EllipticCurvePrivateKey
    root: x509.Certificate
    intermediate_key: ec.EllipticCurvePrivateKey
    intermediate: x509.Certificate

    @classmethod
    def create(cls, seed: str, organization: str) -> FulcioCA:
        root_key = derive_ec_key(f"{seed}/fulcio-root", ec.SECP384R1())
        root = make_root(f"{seed}/fulcio-root", root_key, _name(organization, "sigstore"))
        intermediate_key = derive_ec_key(f"{seed}/fulcio-intermediate", ec.SECP384R1())
        intermediate = make_intermediate(
            f"{seed}/fulcio-intermediate",
            intermediate_key,
            _name(organization, "sigstore-intermediate"),
            root_key,
            root,
        )
        return cls(root_key, root, intermediate_key, intermediate)

    @property
    def chain(self) -> list[x509.Certificate]:
        """Leaf-to-root order, as a trusted root's ``certChain`` lists it."""
        return [self.intermediate, self.root]


@dataclass(frozen=True)
class CTLog:
    """A certificate-transparency log that only ever issues SCTs (nothing is really logged)."""

    key: ec.EllipticCurvePrivateKey

    @property
    def log_id(self) -> bytes:
        return key_id(self.key.public_key())


def fulcio_extensions(
    issuer: str | None, extensions: Mapping[str, str | bytes] | None
) -> dict[str, bytes]:
    """Extension OID -> raw extnValue, from an OIDC issuer and caller-named Fulcio extensions.

    Names are matched case-insensitively against ``FULCIO_EXTENSION_OIDS``; a dotted OID is
    taken as is. ``str`` values are encoded per Fulcio's rules for that OID; ``bytes`` values
    are used verbatim (to build deliberately odd certificates).
    """
    result: dict[str, bytes] = {}
    if issuer is not None:
        result[FULCIO_ISSUER_V1_OID] = issuer.encode()
        result[FULCIO_ISSUER_V2_OID] = _der.utf8_string(issuer)
    for name, value in (extensions or {}).items():
        dotted = name if name[:1].isdigit() else _NAME_TO_OID.get(name.lower())
        if dotted is None:
            raise ValueError(f"unknown Fulcio extension name: {name!r}")
        if isinstance(value, bytes):
            result[dotted] = value
        elif dotted in _LEGACY_RAW_OIDS:
            result[dotted] = value.encode()
        else:
            result[dotted] = _der.utf8_string(value)
    return result


def san_for(identity: str) -> x509.GeneralName:
    """URI SAN for workload identities, RFC 822 SAN for e-mail identities (as Fulcio does)."""
    if "://" in identity:
        return x509.UniformResourceIdentifier(identity)
    if "@" in identity:
        return x509.RFC822Name(identity)
    raise ValueError(f"identity must be a URI or an e-mail address: {identity!r}")


def issue_leaf(
    ca: FulcioCA,
    public_key: ec.EllipticCurvePublicKey,
    *,
    identity: str,
    extensions: Mapping[str, bytes],
    not_before: datetime,
    not_after: datetime,
    ct_log: CTLog,
    sct_log_id: bytes | None = None,
) -> x509.Certificate:
    """A Fulcio-style code-signing certificate with one embedded precertificate SCT.

    ``ct_log`` signs the SCT; ``sct_log_id`` overrides the log id written into it (a rogue
    key claiming to be the trusted log).
    """
    builder = (
        x509.CertificateBuilder()
        # Fulcio leaves have an empty subject; the identity lives in a critical SAN (RFC 5280).
        .subject_name(x509.Name([]))
        .issuer_name(ca.intermediate.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(signing_key_usage(), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.intermediate_key.public_key()),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName([san_for(identity)]), critical=True)
    )
    for dotted, value in extensions.items():
        builder = builder.add_extension(
            x509.UnrecognizedExtension(ObjectIdentifier(dotted), value), critical=False
        )

    # The SCT signs the precertificate TBS, which is the final TBS minus the SCT extension:
    # issue once with an empty SCT list to learn those exact bytes, then again with the SCT.
    placeholder = builder.add_extension(
        x509.UnrecognizedExtension(SCT_LIST_OID, _der.octet_string(b"\x00\x00")), critical=False
    ).sign(ca.intermediate_key, hashes.SHA384())
    sct = _sign_sct(
        ct_log,
        log_id=sct_log_id or ct_log.log_id,
        tbs_precertificate=placeholder.tbs_precertificate_bytes,
        issuer_key_hash=key_id(ca.intermediate_key.public_key()),
        # Whole seconds: sigstore-python rebuilds the millisecond timestamp through a float,
        # which only round-trips exactly for whole seconds.
        timestamp_ms=int(not_before.timestamp()) * 1000,
    )
    sct_list = struct.pack("!H", len(sct) + 2) + struct.pack("!H", len(sct)) + sct
    return builder.add_extension(
        x509.UnrecognizedExtension(SCT_LIST_OID, _der.octet_string(sct_list)), critical=False
    ).sign(ca.intermediate_key, hashes.SHA384())


def _sign_sct(
    ct_log: CTLog,
    *,
    log_id: bytes,
    tbs_precertificate: bytes,
    issuer_key_hash: bytes,
    timestamp_ms: int,
) -> bytes:
    """A TLS-encoded RFC 6962 SCT (v1, precert_entry) signed with ECDSA P-256/SHA-256."""
    tbs_len = struct.pack("!I", len(tbs_precertificate))[1:]
    signed = (
        struct.pack("!BBQH", 0, 0, timestamp_ms, 1)  # v1, certificate_timestamp, precert_entry
        + issuer_key_hash
        + tbs_len
        + tbs_precertificate
        + b"\x00\x00"  # no CT extensions
    )
    signature = ct_log.key.sign(signed, ec.ECDSA(hashes.SHA256()))
    return (
        b"\x00"
        + log_id
        + struct.pack("!Q", timestamp_ms)
        + b"\x00\x00"
        + b"\x04\x03"  # sha256, ecdsa
        + struct.pack("!H", len(signature))
        + signature
    )


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def now_utc() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)
