"""The test stack against the real sigstore-python: good bundles verify, every tamper is caught."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import rekor_types
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509 import ObjectIdentifier, UnrecognizedExtension, load_der_x509_certificate
from rfc3161_client import VerifierBuilder, decode_timestamp_response
from sigstore._internal.trust import KeyringPurpose
from sigstore.dsse import Statement
from sigstore.errors import CertValidationError, Error, VerificationError
from sigstore.models import Bundle, TransparencyLogEntry, TrustedRoot
from sigstore.verify import Verifier
from sigstore.verify.policy import (
    AllOf,
    GitHubWorkflowRepository,
    Identity,
    OIDCBuildSignerURI,
    OIDCIssuerV2,
    OIDCRunnerEnvironment,
    OIDCSourceRepositoryDigest,
    OIDCSourceRepositoryRef,
    OIDCSourceRepositoryURI,
)
from sigstore_models.bundle.v1 import Bundle as BundleModel

from tests.sigstore_stack import (
    BARE_DSSE_TAMPERS,
    CERTIFICATE_TAMPERS,
    DEFAULT_IDENTITY,
    DEFAULT_ISSUER,
    FULCIO_EXTENSION_OIDS,
    KEY_TAMPERS,
    TAMPERS,
    SigningKey,
    SigstoreTestStack,
    decode_bundle,
    github_actions_extensions,
    pae,
    public_key_hint,
)

ARTIFACT = b"provenant test artifact\n"
POLICY = Identity(identity=DEFAULT_IDENTITY, issuer=DEFAULT_ISSUER)


def statement(data: bytes = ARTIFACT, **overrides: Any) -> dict[str, Any]:
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "app.tar.gz", "digest": {"sha256": hashlib.sha256(data).hexdigest()}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {"buildDefinition": {"buildType": "https://example.com/build@v1"}},
        **overrides,
    }


@pytest.fixture(scope="module")
def stack() -> SigstoreTestStack:
    return SigstoreTestStack.get()


@pytest.fixture(scope="module")
def verifier(stack: SigstoreTestStack) -> Verifier:
    return Verifier(trusted_root=stack.trusted_root)


def verify_dsse(verifier: Verifier, bundle_json: str, policy: Any = POLICY) -> Statement:
    """verify_dsse, then the library's own in-toto Statement validation.

    ``Verifier.verify_dsse`` returns the payload unparsed; rejecting a Statement without
    subject is ``sigstore.dsse.Statement``'s job, as in sigstore-python's own CLI.
    """
    payload_type, payload = verifier.verify_dsse(Bundle.from_json(bundle_json), policy)
    assert payload_type == "application/vnd.in-toto+json"
    return Statement(payload)


def verify_artifact(verifier: Verifier, bundle_json: str, policy: Any = POLICY) -> None:
    verifier.verify_artifact(ARTIFACT, Bundle.from_json(bundle_json), policy)


# ---------------------------------------------------------------------------------------------
# Trust root


def test_trusted_root_loads_with_sigstores_loader(stack: SigstoreTestStack, tmp_path: Path) -> None:
    path = stack.write_trusted_root(tmp_path / "trusted_root.json")
    root = TrustedRoot.from_file(str(path))
    assert json.loads(path.read_text())["mediaType"] == (
        "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
    )
    assert len(root.get_fulcio_certs()) == 2
    assert len(root.get_timestamp_authorities()) == 1
    root.rekor_keyring(KeyringPurpose.VERIFY)
    root.ct_keyring(KeyringPurpose.VERIFY)
    Verifier(trusted_root=root)


def test_same_seed_same_root_other_seed_other_root() -> None:
    first, second = SigstoreTestStack.create("seed-a"), SigstoreTestStack.create("seed-a")
    assert first.trusted_root_json() == second.trusted_root_json()
    assert SigstoreTestStack.create("seed-b").trusted_root_json() != first.trusted_root_json()
    assert SigstoreTestStack.get() is SigstoreTestStack.get()


def test_bundle_from_another_stack_is_untrusted(verifier: Verifier) -> None:
    foreign = SigstoreTestStack.create("someone-else")
    with pytest.raises(CertValidationError, match="failed to build timestamp certificate chain"):
        verify_dsse(verifier, foreign.sign_dsse(statement()))


def test_stack_without_tsa() -> None:
    stack = SigstoreTestStack.create("no-tsa", with_tsa=False)
    assert stack.trusted_root.get_timestamp_authorities() == []
    verify_artifact(Verifier(trusted_root=stack.trusted_root), stack.sign_artifact(ARTIFACT))
    with pytest.raises(ValueError, match="with_tsa=False"):
        stack.sign_artifact(ARTIFACT, with_timestamp=True)


def test_generation_and_a_dozen_signatures_are_fast() -> None:
    started = time.perf_counter()
    stack = SigstoreTestStack.create("speed")
    for _ in range(6):
        stack.sign_dsse(statement(), with_timestamp=True)
        stack.sign_artifact(ARTIFACT)
    assert time.perf_counter() - started < 2.0


# ---------------------------------------------------------------------------------------------
# Good keyless bundles


@pytest.mark.parametrize(
    ("with_timestamp", "inclusion_promise"),
    [(False, True), (True, True), (True, False)],
    ids=["set", "set+tsa", "tsa-only"],
)
def test_good_keyless_bundles_verify(
    stack: SigstoreTestStack, verifier: Verifier, with_timestamp: bool, inclusion_promise: bool
) -> None:
    dsse = stack.sign_dsse(
        statement(), with_timestamp=with_timestamp, inclusion_promise=inclusion_promise
    )
    assert verify_dsse(verifier, dsse)._inner.subjects[0].name == "app.tar.gz"
    artifact = stack.sign_artifact(
        ARTIFACT, with_timestamp=with_timestamp, inclusion_promise=inclusion_promise
    )
    verify_artifact(verifier, artifact)

    decoded = decode_bundle(dsse)
    assert decoded["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    entry = decoded["verificationMaterial"]["tlogEntries"][0]
    assert entry["kindVersion"] == {"kind": "dsse", "version": "0.0.1"}
    assert ("inclusionPromise" in entry) is inclusion_promise
    assert ("timestampVerificationData" in decoded["verificationMaterial"]) is with_timestamp
    rekor_types.Dsse.model_validate(entry["body"])


def test_log_indexes_grow_and_bundles_roundtrip(stack: SigstoreTestStack) -> None:
    first = Bundle.from_json(stack.sign_artifact(ARTIFACT))
    second = Bundle.from_json(stack.sign_artifact(ARTIFACT))
    assert second.log_entry._inner.log_index == first.log_entry._inner.log_index + 1
    assert Bundle.from_json(first.to_json()).to_json() == first.to_json()


def test_fixed_signing_time(stack: SigstoreTestStack, verifier: Verifier) -> None:
    at = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    bundle = Bundle.from_json(stack.sign_artifact(ARTIFACT, signed_at=at, with_timestamp=True))
    assert bundle.log_entry._inner.integrated_time == int(at.timestamp())
    assert bundle.signing_certificate.not_valid_before_utc < at
    verifier.verify_artifact(ARTIFACT, bundle, POLICY)


def test_email_identity(stack: SigstoreTestStack, verifier: Verifier) -> None:
    bundle = stack.sign_dsse(
        statement(), identity="dev@example.com", issuer="https://accounts.example.com"
    )
    verify_dsse(
        verifier,
        bundle,
        Identity(identity="dev@example.com", issuer="https://accounts.example.com"),
    )
    with pytest.raises(VerificationError, match="SANs do not match"):
        verify_dsse(verifier, bundle, Identity(identity="other@example.com"))


def test_fulcio_extensions_are_readable_by_sigstore_policies(
    stack: SigstoreTestStack, verifier: Verifier
) -> None:
    extensions = github_actions_extensions(repository="acme/app", ref="refs/tags/v1.0.0")
    bundle = stack.sign_dsse(statement(), extensions=extensions)
    policy = AllOf(
        [
            POLICY,
            OIDCIssuerV2(DEFAULT_ISSUER),
            OIDCBuildSignerURI(DEFAULT_IDENTITY),
            OIDCRunnerEnvironment("github-hosted"),
            OIDCSourceRepositoryURI("https://github.com/acme/app"),
            OIDCSourceRepositoryRef("refs/tags/v1.0.0"),
            OIDCSourceRepositoryDigest(extensions["sourceRepositoryDigest"]),
            GitHubWorkflowRepository("acme/app"),  # legacy raw-bytes extension
        ]
    )
    verify_dsse(verifier, bundle, policy)
    with pytest.raises(VerificationError, match="OIDCSourceRepositoryRef"):
        verify_dsse(verifier, bundle, OIDCSourceRepositoryRef("refs/heads/main"))

    cert = Bundle.from_json(bundle).signing_certificate
    present = {ext.oid.dotted_string for ext in cert.extensions}
    assert {FULCIO_EXTENSION_OIDS[name] for name in extensions} <= present
    # Dotted OIDs and case-insensitive names work too.
    custom = stack.sign_artifact(
        ARTIFACT,
        extensions={"1.3.6.1.4.1.57264.1.20": "workflow_dispatch", "RUNNERENVIRONMENT": "x"},
    )
    trigger = Bundle.from_json(custom).signing_certificate.extensions.get_extension_for_oid(
        ObjectIdentifier("1.3.6.1.4.1.57264.1.20")
    )
    assert isinstance(trigger.value, UnrecognizedExtension)
    assert trigger.value.value == b"\x0c\x11workflow_dispatch"  # DER UTF8String


def test_missing_issuer_fails_issuer_policy(stack: SigstoreTestStack, verifier: Verifier) -> None:
    bundle = stack.sign_artifact(ARTIFACT, issuer=None)
    verify_artifact(verifier, bundle, Identity(identity=DEFAULT_IDENTITY))
    with pytest.raises(VerificationError, match="does not contain OIDCIssuer"):
        verify_artifact(verifier, bundle)


def test_unknown_extension_name_is_an_error(stack: SigstoreTestStack) -> None:
    with pytest.raises(ValueError, match="unknown Fulcio extension"):
        stack.sign_artifact(ARTIFACT, extensions={"noSuchThing": "x"})


# ---------------------------------------------------------------------------------------------
# Broken keyless bundles: each rejected by the real Verifier, for the intended reason

DSSE_REJECTIONS: dict[str, tuple[type[Exception], str]] = {
    "bad_signature": (VerificationError, "DSSE: invalid signature"),
    "bad_chain": (CertValidationError, "failed to build timestamp certificate chain"),
    "expired_cert": (CertValidationError, "not valid at validation time"),
    "bad_sct": (VerificationError, "failed to verify SCT on signing certificate"),
    "bad_inclusion_proof": (VerificationError, "inclusion proof contains invalid root hash"),
    "bad_checkpoint": (VerificationError, "checkpoint: invalid signature"),
    "bad_set": (VerificationError, "SET: invalid inclusion promise"),
    "tlog_body_mismatch": (VerificationError, "log entry payload hash does not match bundle"),
    "bad_timestamp": (VerificationError, "not enough sources of verified time"),
    "subject_missing": (Error, "malformed in-toto statement"),
    "modified_payload": (VerificationError, "DSSE: invalid signature"),
}
ARTIFACT_REJECTIONS: dict[str, tuple[type[Exception], str]] = {
    **DSSE_REJECTIONS,
    "bad_signature": (VerificationError, "Signature is invalid for input"),
    "tlog_body_mismatch": (
        VerificationError,
        "transparency log entry is inconsistent with other materials",
    ),
    "modified_payload": (VerificationError, "Bundle message digest mismatch"),
}
del ARTIFACT_REJECTIONS["subject_missing"]


def test_every_tamper_is_covered() -> None:
    assert set(DSSE_REJECTIONS) == set(TAMPERS)


@pytest.mark.parametrize("tamper", TAMPERS)
def test_tampered_dsse_is_rejected(
    stack: SigstoreTestStack, verifier: Verifier, tamper: str
) -> None:
    exc_type, message = DSSE_REJECTIONS[tamper]
    bundle = stack.sign_dsse(statement(), tamper=tamper)
    with pytest.raises(exc_type, match=message):
        verify_dsse(verifier, bundle)


@pytest.mark.parametrize("tamper", sorted(ARTIFACT_REJECTIONS))
def test_tampered_artifact_is_rejected(
    stack: SigstoreTestStack, verifier: Verifier, tamper: str
) -> None:
    exc_type, message = ARTIFACT_REJECTIONS[tamper]
    bundle = stack.sign_artifact(ARTIFACT, tamper=tamper)
    with pytest.raises(exc_type, match=message):
        verify_artifact(verifier, bundle)


@pytest.mark.parametrize("tamper", ["bad_signature", "bad_chain", "bad_sct", "bad_set"])
def test_tampers_hold_with_timestamps_too(
    stack: SigstoreTestStack, verifier: Verifier, tamper: str
) -> None:
    exc_type, message = ARTIFACT_REJECTIONS[tamper]
    with pytest.raises(exc_type, match=message):
        verify_artifact(verifier, stack.sign_artifact(ARTIFACT, tamper=tamper, with_timestamp=True))


def test_bad_timestamp_is_ignored_while_the_log_vouches_for_the_time(
    stack: SigstoreTestStack, verifier: Verifier
) -> None:
    # Why bad_timestamp drops the SET: sigstore-python skips unverifiable RFC 3161 tokens and
    # carries on with the integrated time, so a forged token next to a SET goes unnoticed.
    good = json.loads(stack.sign_artifact(ARTIFACT))
    forged = json.loads(stack.sign_artifact(ARTIFACT, tamper="bad_timestamp"))
    good["verificationMaterial"]["timestampVerificationData"] = forged["verificationMaterial"][
        "timestampVerificationData"
    ]
    verify_artifact(verifier, json.dumps(good))


def test_inapplicable_tampers_are_refused(stack: SigstoreTestStack) -> None:
    with pytest.raises(ValueError, match="does not apply"):
        stack.sign_artifact(ARTIFACT, tamper="subject_missing")
    with pytest.raises(ValueError, match="does not apply"):
        stack.sign_dsse(statement(), tamper="no_such_tamper")


# ---------------------------------------------------------------------------------------------
# Key-signed bundles. sigstore-python refuses v0.3 bundles without a certificate, so these are
# checked with its protobuf model, its own log-entry verification (inclusion proof, checkpoint,
# SET) and, here, the signature / body / timestamp checks it would do with a certificate.


@pytest.fixture(scope="module")
def keys() -> dict[str, SigningKey]:
    return {
        "ecdsa-p256": ec.generate_private_key(ec.SECP256R1()),
        "ecdsa-p384": ec.generate_private_key(ec.SECP384R1()),
        "ed25519": ed25519.Ed25519PrivateKey.generate(),
        "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
    }


def verify_signature(public_key: Any, signature: bytes, data: bytes) -> None:
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        digest = hashes.SHA384() if public_key.curve.key_size == 384 else hashes.SHA256()
        public_key.verify(signature, data, ec.ECDSA(digest))
    elif isinstance(public_key, ed25519.Ed25519PublicKey):
        public_key.verify(signature, data)
    else:
        public_key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())


def verify_key_bundle(
    stack: SigstoreTestStack, bundle_json: str, public_key: Any, data: bytes | None = None
) -> None:
    """Raise unless ``bundle_json`` is a valid key-signed bundle (``data`` for artifacts)."""
    model = BundleModel.from_json(bundle_json)
    material = model.verification_material
    assert material.public_key is not None and material.certificate is None
    assert material.public_key.hint == public_key_hint(public_key)

    entry = TransparencyLogEntry(material.tlog_entries[0])
    entry._verify(stack.trusted_root.rekor_keyring(KeyringPurpose.VERIFY))
    body = json.loads(entry._inner.canonicalized_body)
    public_pem = public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    verifier_b64 = base64.b64encode(public_pem).decode()

    if model.dsse_envelope is not None:
        envelope = model.dsse_envelope
        signature = envelope.signatures[0].sig
        try:
            verify_signature(public_key, signature, pae(envelope.payload_type, envelope.payload))
        except InvalidSignature:
            raise VerificationError("DSSE: invalid signature") from None
        dsse_spec = rekor_types.Dsse.model_validate(body).spec.root
        assert dsse_spec.payload_hash is not None and dsse_spec.signatures is not None
        if dsse_spec.payload_hash.value != hashlib.sha256(envelope.payload).hexdigest():
            raise VerificationError("log entry payload hash does not match bundle")
        if [(s.signature, s.verifier) for s in dsse_spec.signatures] != [
            (base64.b64encode(signature).decode(), verifier_b64)
        ]:
            raise VerificationError("log entry signatures do not match bundle")
        Statement(envelope.payload)
    else:
        message = model.message_signature
        assert data is not None and message is not None and message.message_digest is not None
        signature = message.signature
        if message.message_digest.digest != hashlib.sha256(data).digest():
            raise VerificationError("Bundle message digest mismatch")
        try:
            verify_signature(public_key, signature, data)
        except InvalidSignature:
            raise VerificationError("Signature is invalid for input") from None
        spec = rekor_types.Hashedrekord.model_validate(body).spec.root
        assert spec.data.hash is not None and spec.signature.public_key is not None
        logged = (spec.data.hash.value, spec.signature.content, spec.signature.public_key.content)
        if logged != (
            hashlib.sha256(data).hexdigest(),
            base64.b64encode(signature).decode(),
            verifier_b64,
        ):
            raise VerificationError("transparency log entry is inconsistent with other materials")

    times = []
    if entry._inner.inclusion_promise is not None:
        times.append(entry._inner.integrated_time)
    if material.timestamp_verification_data is not None:
        assert stack.tsa is not None
        for token in material.timestamp_verification_data.rfc3161_timestamps:
            response = decode_timestamp_response(token.signed_timestamp)
            tsa_verifier = (
                VerifierBuilder()
                .tsa_certificate(stack.tsa.signer)
                .add_root_certificate(stack.tsa.root)
                .build()
            )
            try:
                tsa_verifier.verify_message(response, signature)
                times.append(int(response.tst_info.gen_time.timestamp()))
            except Exception:  # as sigstore-python does: skip tokens that do not verify
                continue
    if not times:
        raise VerificationError("not enough sources of verified time")


KEY_REJECTIONS: dict[str, str] = {
    "bad_signature": "invalid signature|Signature is invalid",
    "bad_inclusion_proof": "inclusion proof contains invalid root hash",
    "bad_checkpoint": "checkpoint: invalid signature",
    "bad_set": "SET: invalid inclusion promise",
    "tlog_body_mismatch": "payload hash does not match|inconsistent with other materials",
    "bad_timestamp": "not enough sources of verified time",
    "subject_missing": "malformed in-toto statement",
    "modified_payload": "DSSE: invalid signature|message digest mismatch",
}


def test_key_tampers_are_covered() -> None:
    assert set(KEY_REJECTIONS) == set(KEY_TAMPERS)
    assert set(KEY_TAMPERS) | CERTIFICATE_TAMPERS == set(TAMPERS)


@pytest.mark.parametrize("key_type", ["ecdsa-p256", "ecdsa-p384", "ed25519", "rsa"])
def test_good_key_signed_bundles(
    stack: SigstoreTestStack, keys: dict[str, SigningKey], key_type: str
) -> None:
    key = keys[key_type]
    dsse = stack.sign_dsse_with_key(statement(), key, with_timestamp=True)
    verify_key_bundle(stack, dsse, key.public_key())
    artifact = stack.sign_artifact_with_key(ARTIFACT, key)
    verify_key_bundle(stack, artifact, key.public_key(), ARTIFACT)
    # The library's Verifier wants a certificate in v0.3 bundles; documents why the checks above.
    with pytest.raises(Error, match="expected certificate in bundle"):
        Bundle.from_json(artifact)


def test_key_bundle_custom_hint(stack: SigstoreTestStack, keys: dict[str, SigningKey]) -> None:
    bundle = json.loads(stack.sign_artifact_with_key(ARTIFACT, keys["ed25519"], hint="release-key"))
    assert bundle["verificationMaterial"]["publicKey"] == {"hint": "release-key"}


@pytest.mark.parametrize(
    ("tamper", "kind"),
    [(t, "dsse") for t in KEY_TAMPERS]
    + [(t, "artifact") for t in KEY_TAMPERS if t != "subject_missing"],
)
def test_tampered_key_signed_bundles_are_rejected(
    stack: SigstoreTestStack, keys: dict[str, SigningKey], tamper: str, kind: str
) -> None:
    key = keys["ecdsa-p256"]
    if kind == "dsse":
        bundle, data = stack.sign_dsse_with_key(statement(), key, tamper=tamper), None
    else:
        bundle, data = stack.sign_artifact_with_key(ARTIFACT, key, tamper=tamper), ARTIFACT
    with pytest.raises(Error, match=KEY_REJECTIONS[tamper]):
        verify_key_bundle(stack, bundle, key.public_key(), data)


@pytest.mark.parametrize("tamper", sorted(CERTIFICATE_TAMPERS))
def test_certificate_tampers_do_not_apply_to_keys(
    stack: SigstoreTestStack, keys: dict[str, SigningKey], tamper: str
) -> None:
    with pytest.raises(ValueError, match="does not apply"):
        stack.sign_artifact_with_key(ARTIFACT, keys["ed25519"], tamper=tamper)


# ---------------------------------------------------------------------------------------------
# Bare DSSE envelopes


def verify_bare(envelope_json: str, public_keys: list[Any]) -> Statement:
    envelope = json.loads(envelope_json)
    payload = base64.b64decode(envelope["payload"])
    for public_key, signature in zip(public_keys, envelope["signatures"], strict=True):
        try:
            verify_signature(
                public_key,
                base64.b64decode(signature["sig"]),
                pae(envelope["payloadType"], payload),
            )
        except InvalidSignature:
            raise VerificationError("DSSE: invalid signature") from None
    return Statement(payload)


def test_bare_dsse(stack: SigstoreTestStack, keys: dict[str, SigningKey]) -> None:
    envelope = stack.sign_bare_dsse(statement(), keys["ed25519"], keyid="k1")
    assert json.loads(envelope)["signatures"][0]["keyid"] == "k1"
    verify_bare(envelope, [keys["ed25519"].public_key()])

    both = [keys["rsa"], keys["ecdsa-p384"]]
    multi = stack.sign_bare_dsse(statement(), both, keyid=["a", "b"])
    assert [s["keyid"] for s in json.loads(multi)["signatures"]] == ["a", "b"]
    verify_bare(multi, [k.public_key() for k in both])


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        ("bad_signature", "DSSE: invalid signature"),
        ("modified_payload", "DSSE: invalid signature"),
        ("subject_missing", "malformed in-toto statement"),
    ],
)
def test_tampered_bare_dsse(
    stack: SigstoreTestStack, keys: dict[str, SigningKey], tamper: str, message: str
) -> None:
    assert tamper in BARE_DSSE_TAMPERS
    envelope = stack.sign_bare_dsse(statement(), keys["ecdsa-p256"], tamper=tamper)
    with pytest.raises(Error, match=message):
        verify_bare(envelope, [keys["ecdsa-p256"].public_key()])


def test_certificates_look_like_fulcios(stack: SigstoreTestStack) -> None:
    bundle = json.loads(stack.sign_artifact(ARTIFACT))
    cert = load_der_x509_certificate(
        base64.b64decode(bundle["verificationMaterial"]["certificate"]["rawBytes"])
    )
    assert cert.subject.rfc4514_string() == ""
    assert cert.issuer == stack.fulcio.intermediate.subject
    issuer_v1 = cert.extensions.get_extension_for_oid(ObjectIdentifier("1.3.6.1.4.1.57264.1.1"))
    assert isinstance(issuer_v1.value, UnrecognizedExtension)
    assert issuer_v1.value.value == DEFAULT_ISSUER.encode()  # legacy: raw bytes, no DER
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime.total_seconds() == 600
