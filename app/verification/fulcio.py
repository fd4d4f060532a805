"""Signer facts from a Fulcio certificate: OIDC issuer, SAN, 1.3.6.1.4.1.57264.1.* extensions.

Policies match on these at decision time, so every Fulcio extension is kept, by the name Fulcio's
docs/oid-info.md gives it.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from app.verification.facts import SignerFacts

FULCIO_ARC = "1.3.6.1.4.1.57264.1."

# OID -> name, per https://github.com/sigstore/fulcio/blob/main/docs/oid-info.md
FULCIO_EXTENSIONS: dict[str, str] = {
    FULCIO_ARC + "1": "issuer",
    FULCIO_ARC + "2": "githubWorkflowTrigger",
    FULCIO_ARC + "3": "githubWorkflowSha",
    FULCIO_ARC + "4": "githubWorkflowName",
    FULCIO_ARC + "5": "githubWorkflowRepository",
    FULCIO_ARC + "6": "githubWorkflowRef",
    FULCIO_ARC + "7": "otherName",
    FULCIO_ARC + "8": "issuerV2",
    FULCIO_ARC + "9": "buildSignerURI",
    FULCIO_ARC + "10": "buildSignerDigest",
    FULCIO_ARC + "11": "runnerEnvironment",
    FULCIO_ARC + "12": "sourceRepositoryURI",
    FULCIO_ARC + "13": "sourceRepositoryDigest",
    FULCIO_ARC + "14": "sourceRepositoryRef",
    FULCIO_ARC + "15": "sourceRepositoryIdentifier",
    FULCIO_ARC + "16": "sourceRepositoryOwnerURI",
    FULCIO_ARC + "17": "sourceRepositoryOwnerIdentifier",
    FULCIO_ARC + "18": "buildConfigURI",
    FULCIO_ARC + "19": "buildConfigDigest",
    FULCIO_ARC + "20": "buildTrigger",
    FULCIO_ARC + "21": "runInvocationURI",
    FULCIO_ARC + "22": "sourceRepositoryVisibilityAtSigning",
}

# The first six extensions predate Fulcio's switch to DER: their value is the raw string.
_RAW_VALUE_OIDS = frozenset(FULCIO_ARC + str(n) for n in range(1, 7))
_UTF8STRING_TAG = 0x0C
OTHERNAME_OID = x509.ObjectIdentifier(FULCIO_ARC + "7")


def der_utf8string(data: bytes) -> str | None:
    """The text of a DER UTF8String, or None when ``data`` is not exactly one."""
    if len(data) < 2 or data[0] != _UTF8STRING_TAG:
        return None
    length = data[1]
    offset = 2
    if length & 0x80:
        width = length & 0x7F
        if width == 0 or width > 4 or len(data) < 2 + width:
            return None
        length = int.from_bytes(data[2 : 2 + width], "big")
        offset = 2 + width
    if offset + length != len(data):
        return None
    try:
        return data[offset:].decode("utf-8")
    except UnicodeDecodeError:
        return None


def _text(raw: bytes, *, der: bool) -> str:
    if der:
        decoded = der_utf8string(raw)
        if decoded is not None:
            return decoded
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        # Not text at all: keep it comparable rather than drop it.
        return raw.hex()


def fulcio_extensions(cert: x509.Certificate) -> dict[str, str]:
    """Every 1.3.6.1.4.1.57264.1.* extension, by name (unknown ones by dotted OID)."""
    found: dict[str, str] = {}
    for ext in cert.extensions:
        oid = ext.oid.dotted_string
        if not oid.startswith(FULCIO_ARC) or not isinstance(ext.value, x509.UnrecognizedExtension):
            continue
        name = FULCIO_EXTENSIONS.get(oid, oid)
        found[name] = _text(ext.value.value, der=oid not in _RAW_VALUE_OIDS)
    return found


def certificate_san(cert: x509.Certificate) -> str | None:
    """The signer identity: e-mail, URI or Fulcio otherName SAN (a Fulcio leaf carries one)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    for email in san.get_values_for_type(x509.RFC822Name):
        return email
    for uri in san.get_values_for_type(x509.UniformResourceIdentifier):
        return uri
    for other in san.get_values_for_type(x509.OtherName):
        if other.type_id == OTHERNAME_OID:
            return _text(other.value, der=True)
    return None


def signer_facts_from_certificate(cert: x509.Certificate) -> SignerFacts:
    extensions = fulcio_extensions(cert)
    return SignerFacts(
        kind="keyless",
        # .1.8 replaced .1.1; certificates from older Fulcio instances only carry .1.1.
        issuer=extensions.get("issuerV2") or extensions.get("issuer"),
        san=certificate_san(cert),
        extensions=extensions,
        certificate_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
    )
