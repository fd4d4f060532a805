"""Keyless (Fulcio certificate) bundles: sigstore-python's Verifier, or our legacy path.

The library verifies everything it supports (hashedrekord 0.0.1/0.0.2 and dsse 0.0.1 entries
with a checkpointed inclusion proof). For what real CI produces beyond that (intoto 0.0.2
entries, v0.1 bundles with only an inclusion promise) the legacy path runs the same steps as
``Verifier._verify_common_signing_cert`` with the library's own building blocks, differing
only where the log entry is checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.x509.oid import ExtendedKeyUsageOID
from sigstore import dsse
from sigstore._internal.sct import verify_sct
from sigstore._internal.timestamp import TimestampSource, TimestampVerificationResult
from sigstore._internal.trust import KeyringPurpose
from sigstore.errors import Error as SigstoreError
from sigstore.hashes import Hashed
from sigstore.models import Bundle, TrustedRoot
from sigstore.verify import Verifier

from app.verification import errors as E
from app.verification.errors import VerificationError
from app.verification.legacy_tlog import EntryVerdict, verify_log_entry
from app.verification.sigstore_errors import translate
from app.verification.sigstore_times import require_enough_times, verified_tsa_times
from app.verification.tlog_bodies import SignerMaterial, check_body_header, check_entry_body

# Entries whose body sigstore-python itself checks against the bundle.
LIBRARY_ENTRY_KINDS = frozenset(
    {("hashedrekord", "0.0.1"), ("hashedrekord", "0.0.2"), ("dsse", "0.0.1")}
)


class AnyIdentity:
    """Identity policy that accepts every certificate.

    Identity is judged by policy at decision time against the stored signer facts, never at
    ingest. (sigstore's UnsafeNoOp does the same but logs a warning on every call.)
    """

    def verify(self, cert: x509.Certificate) -> None:
        return None


@dataclass(frozen=True)
class KeylessOutcome:
    entry: EntryVerdict
    times: list[datetime]


# Building a Verifier parses every key and certificate of its root; roots change only on a
# policy reload, so one Verifier per root object is kept (the root itself is held, so its id
# cannot be reused while the entry lives).
_VERIFIERS: dict[int, tuple[TrustedRoot, Verifier]] = {}
_VERIFIERS_MAX = 64


def _verifier(root: TrustedRoot) -> Verifier:
    cached = _VERIFIERS.get(id(root))
    if cached is not None and cached[0] is root:
        return cached[1]
    try:
        verifier = Verifier(trusted_root=root)
    except SigstoreError as exc:
        raise VerificationError(
            E.UNTRUSTED_ROOT, f"trust root cannot verify keyless: {exc}"
        ) from exc
    if len(_VERIFIERS) >= _VERIFIERS_MAX:
        _VERIFIERS.clear()
    _VERIFIERS[id(root)] = (root, verifier)
    return verifier


@dataclass(frozen=True)
class _CaIdentity:
    """What ``issuer_in_root`` compares a leaf against, for one CA of a root."""

    subject: x509.Name
    # The CA's SubjectKeyIdentifier; None if it has none; the error if its extensions do not
    # parse (raised only when asked for, as reading the certificate itself would).
    key_id: bytes | ValueError | None


# Parsing a root's CA certificates costs far more than the comparison, and every keyless
# bundle asks about each configured root (for the try order, and again for a failure's
# relevance); kept like _VERIFIERS, per root object. None: the root has no Fulcio CA.
_ISSUERS: dict[int, tuple[TrustedRoot, list[_CaIdentity] | None]] = {}


def _ca_identities(root: TrustedRoot) -> list[_CaIdentity] | None:
    cached = _ISSUERS.get(id(root))
    if cached is not None and cached[0] is root:
        return cached[1]
    try:
        cas = root.get_fulcio_certs()
    except SigstoreError:
        identities = None
    else:
        identities = [_CaIdentity(ca.subject, _key_id(ca)) for ca in cas]
    if len(_ISSUERS) >= _VERIFIERS_MAX:
        _ISSUERS.clear()
    _ISSUERS[id(root)] = (root, identities)
    return identities


def _key_id(ca: x509.Certificate) -> bytes | ValueError | None:
    try:
        return ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return None
    except ValueError as exc:
        return exc


def issuer_in_root(cert: x509.Certificate, root: TrustedRoot) -> bool:
    """Whether ``root`` holds the CA that issued ``cert`` (so its verdict on the chain counts).

    By the issuing key when the certificate names it (an impostor CA can copy names, not
    keys), else by the issuer's name.
    """
    cas = _ca_identities(root)
    if cas is None:
        return False
    try:
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except x509.ExtensionNotFound:
        aki = None
    for ca in cas:
        if aki is not None and aki.key_identifier is not None:
            if isinstance(ca.key_id, ValueError):
                raise ca.key_id
            if ca.key_id is not None and ca.key_id == aki.key_identifier:
                return True
        elif ca.subject == cert.issuer:
            return True
    return False


def verify_with_library(bundle: Bundle, root: TrustedRoot, hashed: Hashed | None) -> KeylessOutcome:
    verifier = _verifier(root)
    try:
        if bundle._dsse_envelope is not None:
            verifier.verify_dsse(bundle, AnyIdentity())
        else:
            if hashed is None:
                raise VerificationError(E.SUBJECT_MISSING, "message signature needs a digest")
            verifier.verify_artifact(hashed, bundle, AnyIdentity())
    except (SigstoreError, ValueError, InvalidSignature) as exc:
        raise translate(exc) from exc
    check_body_header(bundle)
    inner = bundle.log_entry._inner
    integrated = None
    if inner.inclusion_promise is not None and inner.integrated_time:
        # The library verified the SET over this time in entry._verify.
        integrated = datetime.fromtimestamp(inner.integrated_time, tz=UTC)
    times = verified_tsa_times(bundle, root) + ([integrated] if integrated else [])
    return KeylessOutcome(EntryVerdict("proof", integrated), times)


def _check_key_usage(cert: x509.Certificate) -> None:
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        extended = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound as exc:
        raise VerificationError(E.CERTIFICATE_CHAIN_INVALID, f"signing certificate: {exc}") from exc
    if not usage.digital_signature:
        raise VerificationError(E.CERTIFICATE_CHAIN_INVALID, "key usage is not digital signature")
    if ExtendedKeyUsageOID.CODE_SIGNING not in extended:
        raise VerificationError(
            E.CERTIFICATE_CHAIN_INVALID, "extended key usage lacks code signing"
        )


def _verify_leaf_signature(bundle: Bundle, cert: x509.Certificate, hashed: Hashed | None) -> None:
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise VerificationError(
            E.UNSUPPORTED_FORMAT, "only ECDSA Fulcio certificates are supported"
        )
    envelope = bundle._dsse_envelope
    try:
        if envelope is not None:
            dsse._verify(key, envelope)
            return
        message = bundle._inner.message_signature
        if message is None or hashed is None:
            raise VerificationError(E.SUBJECT_MISSING, "message signature needs a digest")
        if message.message_digest is not None and message.message_digest.digest != hashed.digest:
            raise VerificationError(E.SUBJECT_MISMATCH, "bundle message digest mismatch")
        key.verify(message.signature, hashed.digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    except (SigstoreError, InvalidSignature) as exc:
        raise VerificationError(E.SIGNATURE_INVALID, f"invalid signature: {exc}") from exc


def verify_legacy(bundle: Bundle, root: TrustedRoot, hashed: Hashed | None) -> KeylessOutcome:
    """Steps (0)-(8) of ``Verifier._verify_common_signing_cert`` / ``verify_dsse``, for entries
    the library refuses; the log entry is checked first since it is our source of time."""
    cert = bundle.signing_certificate
    entry = verify_log_entry(bundle.log_entry, root)
    times = verified_tsa_times(bundle, root)
    if entry.integrated_time is not None:
        times.append(entry.integrated_time)
    require_enough_times(times)
    verifier = _verifier(root)
    chain: list[x509.Certificate] = []
    try:
        # Path validation at each verified time also checks the leaf's validity window, so a
        # certificate that had expired when it was logged fails here (certificate_expired).
        for time in times:
            chain = verifier._verify_chain_at_time(
                cert,
                TimestampVerificationResult(source=TimestampSource.TRANSPARENCY_SERVICE, time=time),
            )
    except SigstoreError as exc:
        raise translate(exc) from exc
    # The chain policy lets any EKU through (Fulcio leaves are not TLS clients), so the
    # Sigstore profile is checked here, as the library does after the SCT.
    _check_key_usage(cert)
    try:
        verify_sct(cert, chain, root.ct_keyring(KeyringPurpose.VERIFY))
    except SigstoreError as exc:
        raise VerificationError(E.SCT_INVALID, f"failed to verify SCT: {exc}") from exc
    _verify_leaf_signature(bundle, cert, hashed)
    check_entry_body(bundle, SignerMaterial(public_key=cert.public_key(), certificate=cert), hashed)
    return KeylessOutcome(entry, times)
