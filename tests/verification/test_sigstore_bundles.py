"""verify_bundle against bundles from the private test stack, broken one check at a time.

Every check we build on top of sigstore-python (intoto 0.0.2 entries, v0.1 bundles with only an
inclusion promise, key-signed bundles, statement subjects, trust-root selection) has a case
here that fails it, and the code it must fail with. The stack signs dsse/hashedrekord 0.0.1
entries; ``relog_as_intoto`` and ``as_v01_promise_only`` turn its bundles into the legacy
shapes real CI still produces, logged in the stack's own Rekor so they verify for real.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from app.verification import sigstore_keyless
from app.verification.errors import VerificationError
from app.verification.facts import VerifiedDocument
from app.verification.fulcio import (
    FULCIO_EXTENSIONS,
    der_utf8string,
    signer_facts_from_certificate,
)
from app.verification.keyring import TrustedKey, spki_key_id
from app.verification.sigstore_bundles import verify_bundle
from app.verification.trust import TrustStore
from app.verification.trust_roots import (
    TrustRootError,
    builtin_root_path,
    load_trust_roots,
    load_trusted_root_file,
)
from tests.sigstore_stack import (
    DEFAULT_IDENTITY,
    DEFAULT_ISSUER,
    KEY_TAMPERS,
    TAMPERS,
    SigningKey,
    SigstoreTestStack,
    github_actions_extensions,
    pae,
    public_key_hint,
)

TESTDATA = Path(__file__).parents[2].parent / "shared" / "testdata"
needs_testdata = pytest.mark.skipif(not TESTDATA.is_dir(), reason=f"{TESTDATA} is absent")

ARTIFACT = b"provenant artifact\n"
ARTIFACT_DIGEST = ("sha256", hashlib.sha256(ARTIFACT).hexdigest())
V01 = "application/vnd.dev.sigstore.bundle+json;version=0.1"

STACK = SigstoreTestStack.get()
P256 = ec.derive_private_key(0x5EED, ec.SECP256R1())
OTHER_P256 = ec.derive_private_key(0xBAD, ec.SECP256R1())
ED25519 = ed25519.Ed25519PrivateKey.from_private_bytes(b"\x07" * 32)
RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def statement(**overrides: Any) -> dict[str, Any]:
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "app.tar.gz", "digest": {"sha256": ARTIFACT_DIGEST[1]}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {"buildDefinition": {"buildType": "https://example.com/build@v1"}},
        **overrides,
    }


def trusted_key(private: SigningKey, *aliases: str) -> dict[str, TrustedKey]:
    public = private.public_key()
    algorithm = {ec.EllipticCurvePublicKey: "ecdsa-p256", rsa.RSAPublicKey: "rsa"}
    name = next((v for k, v in algorithm.items() if isinstance(public, k)), "ed25519")
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    key = TrustedKey(spki_key_id(public), name, public, pem, "test")
    return {key.key_id: key, public_key_hint(public): key, **dict.fromkeys(aliases, key)}


def trust(*private_keys: SigningKey, roots: dict[str, Any] | None = None) -> TrustStore:
    keys: dict[str, TrustedKey] = {}
    for private in private_keys:
        keys.update(trusted_key(private))
    return TrustStore(roots={"test": STACK.trusted_root} if roots is None else roots, keys=keys)


def expect_error(code: str, bundle: Any, store: TrustStore, **kwargs: Any) -> VerificationError:
    with pytest.raises(VerificationError) as info:
        verify_bundle(bundle, store, **kwargs)
    assert info.value.code == code, info.value.message
    return info.value


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def entry_of(doc: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = doc["verificationMaterial"]["tlogEntries"][0]
    return entry


def body_of(doc: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(base64.b64decode(entry_of(doc)["canonicalizedBody"]))
    return body


# -- legacy shapes -------------------------------------------------------------------------------


def intoto_body(doc: dict[str, Any], verifier_pem: bytes) -> dict[str, Any]:
    """The intoto 0.0.2 entry Rekor writes for this bundle's envelope (cosign attest)."""
    envelope = doc["dsseEnvelope"]
    payload = base64.b64decode(envelope["payload"])
    return {
        "apiVersion": "0.0.2",
        "kind": "intoto",
        "spec": {
            "content": {
                "envelope": {
                    "payloadType": envelope["payloadType"],
                    # intoto 0.0.2 stores the signature and verifier base64-encoded once more
                    "signatures": [
                        {
                            "sig": b64(envelope["signatures"][0]["sig"].encode()),
                            "publicKey": b64(verifier_pem),
                        }
                    ],
                },
                "hash": {"algorithm": "sha256", "value": hashlib.sha256(b"envelope").hexdigest()},
                "payloadHash": {
                    "algorithm": "sha256",
                    "value": hashlib.sha256(payload).hexdigest(),
                },
            }
        },
    }


def relog_as_intoto(
    bundle_json: str,
    *,
    edit_body: Callable[[dict[str, Any]], None] | None = None,
    **append: Any,
) -> dict[str, Any]:
    """The bundle, its envelope logged in the stack's Rekor as an intoto 0.0.2 entry."""
    doc = json.loads(bundle_json)
    old = body_of(doc)
    verifier_pem = base64.b64decode(old["spec"]["signatures"][0]["verifier"])
    body = intoto_body(doc, verifier_pem)
    if edit_body is not None:
        edit_body(body)
    new_entry = STACK.rekor.append(
        rfc8785.dumps(body),
        kind="intoto",
        integrated_time=int(entry_of(doc)["integratedTime"]),
        **append,
    )
    new_entry["kindVersion"]["version"] = "0.0.2"
    doc["verificationMaterial"]["tlogEntries"] = [new_entry]
    return doc


def as_v01_promise_only(doc_or_json: dict[str, Any] | str) -> dict[str, Any]:
    """The bundle as a v0.1 bundle with only an inclusion promise (sigstore-js 1.x, cosign)."""
    doc = json.loads(doc_or_json) if isinstance(doc_or_json, str) else copy.deepcopy(doc_or_json)
    doc["mediaType"] = V01
    material = doc["verificationMaterial"]
    if "certificate" in material:
        material["x509CertificateChain"] = {"certificates": [material.pop("certificate")]}
    entry_of(doc).pop("inclusionProof")
    return doc


def keyless_dsse(tamper: str | None = None, **kwargs: Any) -> str:
    return STACK.sign_dsse(statement(), tamper=tamper, **kwargs)


LEGACY_KEYLESS_SHAPES: dict[str, Callable[[str], dict[str, Any]]] = {
    "intoto-v0.3": relog_as_intoto,
    "intoto-v0.1-promise": lambda b: as_v01_promise_only(relog_as_intoto(b)),
    "dsse-v0.1-promise": as_v01_promise_only,
}


# =================================================================================================
# Keyless bundles through sigstore-python: each stack tamper gives its code


KEYLESS_DSSE_CODES = {
    "bad_signature": "signature_invalid",
    # The leaf's issuing key is in no root (an impostor CA with the trusted CA's names).
    "bad_chain": "untrusted_root",
    "expired_cert": "certificate_expired",
    "bad_sct": "sct_invalid",
    "bad_inclusion_proof": "tlog_proof_invalid",
    "bad_checkpoint": "tlog_proof_invalid",
    "bad_set": "tlog_proof_invalid",
    "tlog_body_mismatch": "tlog_entry_mismatch",
    "bad_timestamp": "timestamp_invalid",
    "subject_missing": "subject_missing",
    "modified_payload": "signature_invalid",
}
KEYLESS_ARTIFACT_CODES = {
    **KEYLESS_DSSE_CODES,
    # The bundle is valid, for other bytes: its recorded digest is not the uploader's.
    "modified_payload": "subject_mismatch",
}


def test_every_stack_tamper_has_an_expected_code() -> None:
    assert set(KEYLESS_DSSE_CODES) == set(TAMPERS)


def test_keyless_dsse_verifies_with_facts() -> None:
    extensions = github_actions_extensions()
    bundle = STACK.sign_dsse(statement(), extensions=extensions, with_timestamp=True)
    document = verify_bundle(json.loads(bundle), trust(), message_digest=ARTIFACT_DIGEST)
    assert (document.format, document.content_kind, document.trust_root) == (
        "sigstore-bundle",
        "statement",
        "test",
    )
    assert document.media_type == "application/vnd.dev.sigstore.bundle.v0.3+json"
    signer = document.signers[0]
    assert (signer.kind, signer.issuer, signer.san) == ("keyless", DEFAULT_ISSUER, DEFAULT_IDENTITY)
    assert signer.certificate_pem and signer.certificate_pem.startswith("-----BEGIN CERTIFICATE")
    assert signer.extensions["issuer"] == signer.extensions["issuerV2"] == DEFAULT_ISSUER
    assert signer.extensions["githubWorkflowSha"] == extensions["githubWorkflowSHA"]
    for name, value in extensions.items():
        ours = "githubWorkflowSha" if name == "githubWorkflowSHA" else name
        assert signer.extensions[ours] == value, name
    [tlog] = document.tlog
    assert (tlog.kind, tlog.kind_version, tlog.inclusion) == ("dsse", "0.0.1", "proof")
    assert tlog.log_id == STACK.rekor.log_id.hex()
    assert tlog.integrated_time is not None and len(document.timestamps) == 2  # SET + TSA
    assert document.predicate_type == "https://slsa.dev/provenance/v1"
    assert document.subjects[0].digests == {"sha256": ARTIFACT_DIGEST[1]}
    assert document.statement == statement()


@pytest.mark.parametrize("tamper", TAMPERS)
def test_keyless_dsse_tampers(tamper: str) -> None:
    expect_error(KEYLESS_DSSE_CODES[tamper], keyless_dsse(tamper), trust())


@pytest.mark.parametrize("tamper", [t for t in TAMPERS if t != "subject_missing"])
def test_keyless_artifact_tampers(tamper: str) -> None:
    bundle = STACK.sign_artifact(ARTIFACT, tamper=tamper)
    expect_error(KEYLESS_ARTIFACT_CODES[tamper], bundle, trust(), message_digest=ARTIFACT_DIGEST)


def test_keyless_artifact_verifies() -> None:
    document = verify_bundle(
        STACK.sign_artifact(ARTIFACT).encode(), trust(), message_digest=ARTIFACT_DIGEST
    )
    assert document.content_kind == "message-signature"
    assert document.message_digest == ARTIFACT_DIGEST
    assert document.statement is None and document.subjects == []
    assert document.tlog[0].kind == "hashedrekord"


def test_message_signature_needs_a_digest() -> None:
    error = expect_error("subject_missing", STACK.sign_artifact(ARTIFACT), trust())
    assert "subject_digest" in error.message


def test_message_signature_for_other_bytes() -> None:
    other = ("sha256", hashlib.sha256(b"other").hexdigest())
    expect_error("subject_mismatch", STACK.sign_artifact(ARTIFACT), trust(), message_digest=other)
    # Without the bundle's own messageDigest, only the signature can notice.
    doc = json.loads(STACK.sign_artifact(ARTIFACT))
    del doc["messageSignature"]["messageDigest"]
    expect_error("signature_invalid", doc, trust(), message_digest=other)


def test_message_digest_must_be_sha256_hex() -> None:
    bundle = STACK.sign_artifact(ARTIFACT)
    expect_error("unsupported_format", bundle, trust(), message_digest=("sha512", "ab" * 64))
    expect_error("malformed", bundle, trust(), message_digest=("sha256", "not hex"))


def test_rekor_v2_and_tsa_verify() -> None:
    """A Rekor v2 entry (hashedrekord 0.0.2, RFC 3161 time, no integrated time) verifies
    against staging, the root that holds its issuer."""
    if not TESTDATA.is_dir():
        pytest.skip(f"{TESTDATA} is absent")
    bundle = (TESTDATA / "sigstore-python/a.dsse.staging-rekor-v2.txt.sigstore.json").read_bytes()
    document = verify_bundle(bundle, TrustStore(roots=load_trust_roots(Path("/nonexistent"))))
    [tlog] = document.tlog
    assert (document.trust_root, tlog.kind, tlog.kind_version) == (
        "staging",
        "hashedrekord",
        "0.0.2",
    )
    assert tlog.integrated_time is None and tlog.inclusion == "proof"
    assert len(document.timestamps) == 1  # from the RFC 3161 timestamp alone
    tampered = json.loads(bundle)
    tampered["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(b"\0" * 64).decode()
    with pytest.raises(VerificationError):
        verify_bundle(tampered, TrustStore(roots=load_trust_roots(Path("/nonexistent"))))


# =================================================================================================
# Legacy keyless shapes: intoto 0.0.2 entries and v0.1 promise-only bundles


@pytest.mark.parametrize("shape", LEGACY_KEYLESS_SHAPES)
def test_legacy_keyless_shapes_verify(shape: str) -> None:
    doc = LEGACY_KEYLESS_SHAPES[shape](keyless_dsse())
    document = verify_bundle(doc, trust(), message_digest=ARTIFACT_DIGEST)
    [tlog] = document.tlog
    assert tlog.kind == ("intoto" if shape.startswith("intoto") else "dsse")
    assert tlog.inclusion == ("promise" if "promise" in shape else "proof")
    assert tlog.integrated_time is not None and document.timestamps == [tlog.integrated_time]
    assert document.signers[0].san == DEFAULT_IDENTITY
    assert document.subjects[0].digests["sha256"] == ARTIFACT_DIGEST[1]


def test_promise_only_message_signature_verifies() -> None:
    doc = as_v01_promise_only(STACK.sign_artifact(ARTIFACT))
    document = verify_bundle(doc, trust(), message_digest=ARTIFACT_DIGEST)
    assert document.tlog[0].inclusion == "promise"
    doc["messageSignature"]["signature"] = b64(b"\x30\x06\x02\x01\x01\x02\x01\x01")
    expect_error("signature_invalid", doc, trust(), message_digest=ARTIFACT_DIGEST)
    other = ("sha256", hashlib.sha256(b"other").hexdigest())
    doc = as_v01_promise_only(STACK.sign_artifact(ARTIFACT))
    expect_error("subject_mismatch", doc, trust(), message_digest=other)


CERTIFICATE_LEVEL_TAMPERS = {
    "bad_signature": "signature_invalid",
    "bad_chain": "untrusted_root",
    "expired_cert": "certificate_expired",
    "bad_sct": "sct_invalid",
    "modified_payload": "signature_invalid",
    "subject_missing": "subject_missing",
}


@pytest.mark.parametrize("shape", LEGACY_KEYLESS_SHAPES)
@pytest.mark.parametrize("tamper", CERTIFICATE_LEVEL_TAMPERS)
def test_legacy_keyless_certificate_and_signature_checks(shape: str, tamper: str) -> None:
    doc = LEGACY_KEYLESS_SHAPES[shape](keyless_dsse(tamper))
    expect_error(CERTIFICATE_LEVEL_TAMPERS[tamper], doc, trust())


def test_issuer_in_root_goes_by_the_issuing_key() -> None:
    # bad_chain's impostor CA has the trusted CA's names but not its key.
    bad = json.loads(keyless_dsse("bad_chain"))["verificationMaterial"]["certificate"]
    good = json.loads(keyless_dsse())["verificationMaterial"]["certificate"]
    for material, expected in ((bad, False), (good, True)):
        leaf = x509.load_der_x509_certificate(base64.b64decode(material["rawBytes"]))
        assert sigstore_keyless.issuer_in_root(leaf, STACK.trusted_root) is expected


def test_issuer_in_root_reads_each_roots_certificate_authorities_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    STACK.write_trusted_root(tmp_path / "root.json")
    root = load_trusted_root_file(tmp_path / "root.json")
    reads = 0
    read = root.get_fulcio_certs

    def counting() -> list[x509.Certificate]:
        nonlocal reads
        reads += 1
        return read()

    monkeypatch.setattr(root, "get_fulcio_certs", counting)
    bad = json.loads(keyless_dsse("bad_chain"))["verificationMaterial"]["certificate"]
    good = json.loads(keyless_dsse())["verificationMaterial"]["certificate"]
    for _ in range(3):
        for material, expected in ((bad, False), (good, True)):
            leaf = x509.load_der_x509_certificate(base64.b64decode(material["rawBytes"]))
            assert sigstore_keyless.issuer_in_root(leaf, root) is expected
    assert reads == 1
    # A reloaded root is another object: it is read again, never answered from the old one.
    STACK.write_trusted_root(tmp_path / "root.json")
    reloaded = load_trusted_root_file(tmp_path / "root.json")
    leaf = x509.load_der_x509_certificate(base64.b64decode(good["rawBytes"]))
    assert sigstore_keyless.issuer_in_root(leaf, reloaded) is True


def test_issuer_in_root_without_an_authority_key_id_goes_by_the_issuer_name() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "leaf")]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(minutes=10))
    )
    ca_name = STACK.trusted_root.get_fulcio_certs()[0].subject
    other = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "someone else")])
    for issuer, expected in ((ca_name, True), (other, False)):
        leaf = builder.issuer_name(issuer).sign(key, hashes.SHA256())
        assert sigstore_keyless.issuer_in_root(leaf, STACK.trusted_root) is expected


def _bundle_with_leaf(
    eku: list[x509.ObjectIdentifier],
    *,
    digital_signature: bool,
    signed_by: ec.EllipticCurvePrivateKey | None = None,
) -> dict[str, Any]:
    """An intoto bundle whose leaf the stack's Fulcio really issued, with the given usages
    and no SCT (so every check before the SCT passes or fails on the usages alone)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC).replace(microsecond=0)
    ca = STACK.fulcio
    usage = dict.fromkeys(
        [
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
            "encipher_only",
            "decipher_only",
        ],
        False,
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(ca.intermediate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(minutes=9))
        .add_extension(x509.KeyUsage(digital_signature=digital_signature, **usage), critical=True)
        .add_extension(x509.ExtendedKeyUsage(eku), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.intermediate_key.public_key()),
            critical=False,
        )
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(DEFAULT_IDENTITY)]),
            critical=True,
        )
        .sign(signed_by or ca.intermediate_key, hashes.SHA384())
    )
    doc = json.loads(keyless_dsse())
    envelope = doc["dsseEnvelope"]
    signed = pae(envelope["payloadType"], base64.b64decode(envelope["payload"]))
    envelope["signatures"] = [{"sig": b64(key.sign(signed, ec.ECDSA(hashes.SHA256())))}]
    doc["verificationMaterial"]["certificate"] = {
        "rawBytes": b64(cert.public_bytes(serialization.Encoding.DER))
    }
    body = intoto_body(doc, cert.public_bytes(serialization.Encoding.PEM))
    entry = STACK.rekor.append(
        rfc8785.dumps(body), kind="intoto", integrated_time=int(now.timestamp())
    )
    entry["kindVersion"]["version"] = "0.0.2"
    doc["verificationMaterial"]["tlogEntries"] = [entry]
    return doc


def test_legacy_sigstore_certificate_profile() -> None:
    code_signing = [ExtendedKeyUsageOID.CODE_SIGNING]
    # Everything up to the SCT holds for a proper profile: the missing SCT is what fails.
    expect_error("sct_invalid", _bundle_with_leaf(code_signing, digital_signature=True), trust())
    server = [ExtendedKeyUsageOID.SERVER_AUTH]
    expect_error(
        "certificate_chain_invalid", _bundle_with_leaf(server, digital_signature=True), trust()
    )
    no_signing = _bundle_with_leaf(code_signing, digital_signature=False)
    expect_error("certificate_chain_invalid", no_signing, trust())


def test_legacy_forged_leaf_of_a_trusted_issuer() -> None:
    # Names and key identifier of the trusted intermediate, signature of another key: the
    # issuer is ours, so this is a broken chain rather than an unknown root.
    forger = ec.derive_private_key(0xF0F, ec.SECP384R1())
    forged = _bundle_with_leaf(
        [ExtendedKeyUsageOID.CODE_SIGNING], digital_signature=True, signed_by=forger
    )
    expect_error("certificate_chain_invalid", forged, trust())


def test_legacy_timestamp_checks() -> None:
    # No SET and a forged RFC 3161 token: no verified time at all.
    doc = relog_as_intoto(keyless_dsse("bad_timestamp"), inclusion_promise=False)
    expect_error("timestamp_invalid", doc, trust())
    # A genuine token counts as a second source of time next to the SET.
    doc = relog_as_intoto(keyless_dsse(with_timestamp=True))
    assert len(verify_bundle(doc, trust()).timestamps) == 2
    # ...and must verify against the root's TSA when it is there.
    no_tsa = json.loads(STACK.trusted_root_json())
    no_tsa["timestampAuthorities"] = []
    from app.verification.trust_roots import parse_trusted_root

    expect_error("timestamp_invalid", doc, trust(roots={"no-tsa": parse_trusted_root(no_tsa)}))


ROGUE = ec.derive_private_key(0xB0B, ec.SECP256R1())


@pytest.mark.parametrize(
    ("append", "promise_only"),
    [
        ({"set_signer": ROGUE}, False),
        ({"set_signer": ROGUE}, True),
        ({"checkpoint_signer": ROGUE}, False),
        ({"corrupt_proof": True}, False),
        ({"inclusion_promise": False}, True),  # neither proof nor promise
    ],
    ids=["bad-set", "bad-set-promise-only", "bad-checkpoint", "bad-proof", "no-promise"],
)
def test_legacy_log_entry_proofs(append: dict[str, Any], promise_only: bool) -> None:
    doc = relog_as_intoto(keyless_dsse(), **append)
    if promise_only:
        doc = as_v01_promise_only(doc)
    expect_error("tlog_proof_invalid", doc, trust())


@pytest.mark.parametrize("field", ["integratedTime", "logIndex"])
def test_promise_only_set_covers_time_and_index(field: str) -> None:
    doc = as_v01_promise_only(keyless_dsse())
    entry_of(doc)[field] = str(int(entry_of(doc)[field]) + 1)
    expect_error("tlog_proof_invalid", doc, trust())


def test_promise_only_needs_v01() -> None:
    # v0.2+ bundles must carry a checkpointed inclusion proof, whatever the entry kind.
    for doc in (
        as_v01_promise_only(keyless_dsse()),
        as_v01_promise_only(relog_as_intoto(keyless_dsse())),
    ):
        doc["mediaType"] = "application/vnd.dev.sigstore.bundle+json;version=0.2"
        expect_error("tlog_proof_invalid", doc, trust())


@pytest.mark.parametrize("relog", [False, True], ids=["dsse", "intoto"])
def test_v01_proof_without_checkpoint_is_ignored(relog: bool) -> None:
    # As Python-3.12.5.tgz.sigstore ships: an inclusion proof without checkpoint next to the
    # SET. Its root hash is signed by nobody, so it counts for nothing, broken or not.
    doc = relog_as_intoto(keyless_dsse()) if relog else json.loads(keyless_dsse())
    proof = entry_of(doc)["inclusionProof"]
    doc = as_v01_promise_only(doc)
    del proof["checkpoint"]
    proof["hashes"] = [b64(b"\x00" * 32)]
    entry_of(doc)["inclusionProof"] = proof
    assert verify_bundle(doc, trust()).tlog[0].inclusion == "promise"
    entry_of(doc)["integratedTime"] = "1"  # the SET still decides
    expect_error("tlog_proof_invalid", doc, trust())


def _other_signature(body: dict[str, Any]) -> None:
    other = json.loads(keyless_dsse())["dsseEnvelope"]["signatures"][0]["sig"]
    body["spec"]["content"]["envelope"]["signatures"][0]["sig"] = b64(other.encode())


def _other_payload_hash(body: dict[str, Any]) -> None:
    body["spec"]["content"]["payloadHash"]["value"] = hashlib.sha256(b"other").hexdigest()


def _other_verifier(body: dict[str, Any]) -> None:
    other = body_of(json.loads(keyless_dsse()))["spec"]["signatures"][0]["verifier"]
    body["spec"]["content"]["envelope"]["signatures"][0]["publicKey"] = other


def _other_payload_type(body: dict[str, Any]) -> None:
    body["spec"]["content"]["envelope"]["payloadType"] = "text/plain"


def _two_signatures(body: dict[str, Any]) -> None:
    signatures = body["spec"]["content"]["envelope"]["signatures"]
    signatures.append(dict(signatures[0]))


def _no_payload_hash(body: dict[str, Any]) -> None:
    del body["spec"]["content"]["payloadHash"]


def _sha512_payload_hash(body: dict[str, Any]) -> None:
    body["spec"]["content"]["payloadHash"]["algorithm"] = "sha512"


def _not_double_encoded(body: dict[str, Any]) -> None:
    signature = body["spec"]["content"]["envelope"]["signatures"][0]
    signature["sig"] = base64.b64decode(signature["sig"]).decode()


INTOTO_BODY_MISMATCHES: dict[str, Callable[[dict[str, Any]], None]] = {
    "other-signature": _other_signature,
    "other-payload-hash": _other_payload_hash,
    "other-verifier": _other_verifier,
    "other-payload-type": _other_payload_type,
    "two-signatures": _two_signatures,
    "no-payload-hash": _no_payload_hash,
    "sha512-payload-hash": _sha512_payload_hash,
    "signature-not-double-encoded": _not_double_encoded,
}


@pytest.mark.parametrize("promise_only", [False, True], ids=["proof", "promise"])
@pytest.mark.parametrize("mismatch", INTOTO_BODY_MISMATCHES)
def test_intoto_body_must_match_the_bundle(mismatch: str, promise_only: bool) -> None:
    # Each body is validly logged (its SET and proof verify): only the comparison can object.
    doc = relog_as_intoto(keyless_dsse(), edit_body=INTOTO_BODY_MISMATCHES[mismatch])
    if promise_only:
        doc = as_v01_promise_only(doc)
    expect_error("tlog_entry_mismatch", doc, trust())


def test_kind_version_label_must_match_the_logged_body() -> None:
    # kindVersion is not covered by the SET or the proof; the body is.
    doc = json.loads(keyless_dsse())
    entry_of(doc)["kindVersion"] = {"kind": "intoto", "version": "0.0.2"}
    expect_error("tlog_entry_mismatch", doc, trust())
    doc = relog_as_intoto(keyless_dsse())
    entry_of(doc)["kindVersion"] = {"kind": "dsse", "version": "0.0.1"}
    expect_error("tlog_entry_mismatch", doc, trust())


@pytest.mark.parametrize("signer", ["key", "keyless"])
@pytest.mark.parametrize("change", [("apiVersion", "0.0.9"), ("apiVersion", None), ("kind", None)])
def test_body_header_must_match_the_label(signer: str, change: tuple[str, str | None]) -> None:
    # Rekor's models default kind and apiVersion and accept any semver: the label and the
    # signed body must agree, on sigstore-python's path (keyless) as on ours (key).
    if signer == "key":
        doc = json.loads(STACK.sign_dsse_with_key(statement(), P256))
    else:
        doc = json.loads(keyless_dsse())
    body = body_of(doc)
    field, value = change
    if value is None:
        del body[field]
    else:
        body[field] = value
    entry = STACK.rekor.append(
        rfc8785.dumps(body), kind="dsse", integrated_time=int(entry_of(doc)["integratedTime"])
    )
    doc["verificationMaterial"]["tlogEntries"] = [entry]
    expect_error("tlog_entry_mismatch", doc, trust(P256))


def relog_edited(doc: dict[str, Any], edit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """The bundle with its own log entry body edited, then validly logged again."""
    body = body_of(doc)
    edit(body)
    integrated_time = int(entry_of(doc)["integratedTime"])
    entry = STACK.rekor.append(
        rfc8785.dumps(body), kind=body["kind"], integrated_time=integrated_time
    )
    doc["verificationMaterial"]["tlogEntries"] = [entry]
    return doc


OTHER_PEM = b64(
    OTHER_P256.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
)
OTHER_SIGNATURE = b64(OTHER_P256.sign(b"something else", ec.ECDSA(hashes.SHA256())))


def _set(*path: str | int, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(body: dict[str, Any]) -> None:
        target: Any = body["spec"]
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value

    return edit


DSSE_BODY_EDITS = {
    "signature": _set("signatures", 0, "signature", value=OTHER_SIGNATURE),
    "verifier": _set("signatures", 0, "verifier", value=OTHER_PEM),
    "payload-hash": _set("payloadHash", "value", value=hashlib.sha256(b"x").hexdigest()),
}
HASHEDREKORD_BODY_EDITS = {
    "signature": _set("signature", "content", value=OTHER_SIGNATURE),
    "verifier": _set("signature", "publicKey", "content", value=OTHER_PEM),
    "digest": _set("data", "hash", "value", value=hashlib.sha256(b"x").hexdigest()),
}


@pytest.mark.parametrize("signer", ["key", "keyless-promise-only"])
@pytest.mark.parametrize("edit", DSSE_BODY_EDITS)
def test_dsse_body_must_match_the_bundle(signer: str, edit: str) -> None:
    if signer == "key":
        doc = json.loads(STACK.sign_dsse_with_key(statement(), P256))
    else:
        doc = as_v01_promise_only(keyless_dsse())
    expect_error("tlog_entry_mismatch", relog_edited(doc, DSSE_BODY_EDITS[edit]), trust(P256))


@pytest.mark.parametrize("signer", ["key", "keyless-promise-only"])
@pytest.mark.parametrize("edit", HASHEDREKORD_BODY_EDITS)
def test_hashedrekord_body_must_match_the_bundle(signer: str, edit: str) -> None:
    if signer == "key":
        doc = json.loads(STACK.sign_artifact_with_key(ARTIFACT, P256))
    else:
        doc = as_v01_promise_only(STACK.sign_artifact(ARTIFACT))
    doc = relog_edited(doc, HASHEDREKORD_BODY_EDITS[edit])
    expect_error("tlog_entry_mismatch", doc, trust(P256), message_digest=ARTIFACT_DIGEST)


def test_entry_kind_must_suit_the_content() -> None:
    # A DSSE envelope, validly signed and logged, but as a hashedrekord of its PAE.
    doc = json.loads(STACK.sign_dsse_with_key(statement(), P256))
    envelope = doc["dsseEnvelope"]
    signed = pae(envelope["payloadType"], base64.b64decode(envelope["payload"]))
    body = {
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": hashlib.sha256(signed).hexdigest()}},
            "signature": {
                "content": envelope["signatures"][0]["sig"],
                "publicKey": {"content": body_of(doc)["spec"]["signatures"][0]["verifier"]},
            },
        },
    }
    integrated_time = int(entry_of(doc)["integratedTime"])
    entry = STACK.rekor.append(
        rfc8785.dumps(body), kind="hashedrekord", integrated_time=integrated_time
    )
    doc["verificationMaterial"]["tlogEntries"] = [entry]
    expect_error("tlog_entry_mismatch", doc, trust(P256))
    # An entry kind nobody verifies (rekord, helm, ...) is a format we do not support.
    doc = json.loads(STACK.sign_dsse_with_key(statement(), P256))
    entry_of(doc)["kindVersion"] = {"kind": "rekord", "version": "0.0.1"}
    expect_error("unsupported_format", doc, trust(P256))


# =================================================================================================
# Key-signed bundles (sigstore-python does not verify these)


KEY_CODES = {
    "bad_signature": "signature_invalid",
    "bad_inclusion_proof": "tlog_proof_invalid",
    "bad_checkpoint": "tlog_proof_invalid",
    "bad_set": "tlog_proof_invalid",
    "tlog_body_mismatch": "tlog_entry_mismatch",
    "bad_timestamp": "timestamp_invalid",
    "subject_missing": "subject_missing",
    "modified_payload": "signature_invalid",
}
SIGNING_KEYS = {"p256": P256, "ed25519": ED25519, "rsa": RSA}


def test_every_key_tamper_has_an_expected_code() -> None:
    assert set(KEY_CODES) == set(KEY_TAMPERS)


@pytest.mark.parametrize("key_name", SIGNING_KEYS)
def test_key_signed_dsse_verifies_with_facts(key_name: str) -> None:
    private = SIGNING_KEYS[key_name]
    store = trust(private)
    document = verify_bundle(STACK.sign_dsse_with_key(statement(), private), store)
    signer = document.signers[0]
    expected = next(iter(store.keys.values()))
    assert (signer.kind, signer.key_id, signer.key_algorithm) == (
        "key",
        expected.key_id,
        expected.algorithm,
    )
    assert signer.public_key_pem == expected.public_key_pem and signer.certificate_pem is None
    assert document.trust_root == "test" and document.tlog[0].kind == "dsse"


@pytest.mark.parametrize("key_name", SIGNING_KEYS)
@pytest.mark.parametrize("tamper", KEY_TAMPERS)
def test_key_signed_dsse_tampers(key_name: str, tamper: str) -> None:
    private = SIGNING_KEYS[key_name]
    expect_error(
        KEY_CODES[tamper],
        STACK.sign_dsse_with_key(statement(), private, tamper=tamper),
        trust(private),
    )


@pytest.mark.parametrize("key_name", ["p256", "rsa"])
@pytest.mark.parametrize("tamper", [None, *[t for t in KEY_TAMPERS if t != "subject_missing"]])
def test_key_signed_artifact(key_name: str, tamper: str | None) -> None:
    private = SIGNING_KEYS[key_name]
    bundle = STACK.sign_artifact_with_key(ARTIFACT, private, tamper=tamper)
    if tamper is None:
        document = verify_bundle(bundle, trust(private), message_digest=ARTIFACT_DIGEST)
        assert document.content_kind == "message-signature"
        assert document.tlog[0].kind == "hashedrekord"
        return
    code = "subject_mismatch" if tamper == "modified_payload" else KEY_CODES[tamper]
    expect_error(code, bundle, trust(private), message_digest=ARTIFACT_DIGEST)


def test_ed25519_message_signatures_need_the_artifact() -> None:
    bundle = STACK.sign_artifact_with_key(ARTIFACT, ED25519)
    expect_error("unsupported_format", bundle, trust(ED25519), message_digest=ARTIFACT_DIGEST)
    # Keys that cannot check a digest are skipped when looking for the signer.
    bundle = STACK.sign_artifact_with_key(ARTIFACT, RSA, hint="unknown")
    document = verify_bundle(bundle, trust(ED25519, RSA), message_digest=ARTIFACT_DIGEST)
    assert document.signers[0].key_algorithm == "rsa"


def test_unknown_key_is_untrusted() -> None:
    bundle = STACK.sign_dsse_with_key(statement(), P256)
    expect_error("untrusted_key", bundle, trust())
    expect_error("untrusted_key", bundle, trust(OTHER_P256))
    expect_error(
        "untrusted_key",
        STACK.sign_dsse_with_key(statement(), P256, hint="nobody"),
        trust(OTHER_P256),
    )


def test_key_hint_is_only_a_hint() -> None:
    store = trust(P256, OTHER_P256)
    # An unknown, empty or misleading hint still finds the key that really signed...
    for hint in ("unknown", "", public_key_hint(OTHER_P256.public_key())):
        document = verify_bundle(STACK.sign_dsse_with_key(statement(), P256, hint=hint), store)
        assert document.signers[0].key_id == spki_key_id(P256.public_key())
    # ...and "publicKey": {} (proto3 JSON for an empty hint) is a key-signed bundle too.
    doc = json.loads(STACK.sign_dsse_with_key(statement(), P256))
    doc["verificationMaterial"]["publicKey"] = {}
    assert verify_bundle(doc, store).signers[0].kind == "key"


def test_hinted_trusted_key_that_fails_is_a_bad_signature() -> None:
    bundle = STACK.sign_dsse_with_key(statement(), P256, hint="unknown", tamper="bad_signature")
    expect_error("untrusted_key", bundle, trust(P256))
    bundle = STACK.sign_dsse_with_key(statement(), P256, tamper="bad_signature")
    expect_error("signature_invalid", bundle, trust(P256))


def test_key_signed_body_must_name_the_key() -> None:
    # The log entry was written by another key holder, for this very envelope and signature.
    other_pem = OTHER_P256.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    def other_key(body: dict[str, Any]) -> None:
        body["spec"]["content"]["envelope"]["signatures"][0]["publicKey"] = b64(other_pem)

    def certificate(body: dict[str, Any]) -> None:
        keyless = body_of(json.loads(keyless_dsse()))["spec"]["signatures"][0]["verifier"]
        body["spec"]["content"]["envelope"]["signatures"][0]["publicKey"] = keyless

    for edit in (other_key, certificate):
        doc = relog_as_intoto(STACK.sign_dsse_with_key(statement(), P256), edit_body=edit)
        expect_error("tlog_entry_mismatch", doc, trust(P256))


@pytest.mark.parametrize("promise_only", [False, True], ids=["intoto-v0.3", "intoto-v0.1-promise"])
def test_key_signed_intoto_like_npm_publish(promise_only: bool) -> None:
    doc = relog_as_intoto(STACK.sign_dsse_with_key(statement(), P256, hint="SHA256:npm-style-id"))
    if promise_only:
        doc = as_v01_promise_only(doc)
    store = TrustStore(
        roots={"test": STACK.trusted_root}, keys=trusted_key(P256, "SHA256:npm-style-id")
    )
    document = verify_bundle(doc, store)
    assert (document.tlog[0].kind, document.tlog[0].inclusion) == (
        "intoto",
        "promise" if promise_only else "proof",
    )
    expect_error(
        "tlog_proof_invalid",
        as_v01_promise_only(
            relog_as_intoto(STACK.sign_dsse_with_key(statement(), P256), set_signer=ROGUE)
        ),
        store,
    )


def test_key_signed_log_must_be_in_a_trust_root() -> None:
    bundle = STACK.sign_dsse_with_key(statement(), P256)
    public_good = load_trusted_root_file(builtin_root_path("public-good"))
    error = expect_error("untrusted_root", bundle, trust(P256, roots={"public-good": public_good}))
    assert "is not in this root" in error.message
    expect_error("untrusted_root", bundle, trust(P256, roots={}))


def _spki_der(private: SigningKey) -> bytes:
    return private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def with_rekor_v2_entry(
    doc: dict[str, Any], *, digest: bytes, key_der: bytes, signature: bytes
) -> dict[str, Any]:
    """The bundle logged as Rekor v2 logs a key's signature: hashedrekord 0.0.2, no SET."""
    body = {
        "kind": "hashedrekord",
        "apiVersion": "0.0.2",
        "spec": {
            "hashedRekordV002": {
                "data": {"algorithm": "SHA2_256", "digest": b64(digest)},
                "signature": {
                    "content": b64(signature),
                    "verifier": {
                        "publicKey": {"rawBytes": b64(key_der)},
                        "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    },
                },
            }
        },
    }
    entry = STACK.rekor.append(
        rfc8785.dumps(body), kind="hashedrekord", integrated_time=0, inclusion_promise=False
    )
    entry["kindVersion"]["version"] = "0.0.2"
    del entry["integratedTime"]
    doc = copy.deepcopy(doc)
    doc["verificationMaterial"]["tlogEntries"] = [entry]
    return doc


@pytest.mark.parametrize("content", ["message", "dsse"])
@pytest.mark.parametrize("broken", [None, "digest", "key", "signature"])
def test_key_signed_rekor_v2_entry(content: str, broken: str | None) -> None:
    kwargs: dict[str, Any] = {}
    if content == "message":
        doc = json.loads(STACK.sign_artifact_with_key(ARTIFACT, P256, with_timestamp=True))
        signature = base64.b64decode(doc["messageSignature"]["signature"])
        digest = hashlib.sha256(ARTIFACT).digest()
        kwargs["message_digest"] = ARTIFACT_DIGEST
    else:
        doc = json.loads(STACK.sign_dsse_with_key(statement(), P256, with_timestamp=True))
        envelope = doc["dsseEnvelope"]
        signature = base64.b64decode(envelope["signatures"][0]["sig"])
        # Rekor v2 logs a DSSE envelope as the prehash of its PAE.
        digest = hashlib.sha256(
            pae(envelope["payloadType"], base64.b64decode(envelope["payload"]))
        ).digest()
    parts = {"digest": digest, "key_der": _spki_der(P256), "signature": signature}
    if broken == "digest":
        parts["digest"] = hashlib.sha256(b"other").digest()
    elif broken == "key":
        parts["key_der"] = _spki_der(OTHER_P256)
    elif broken == "signature":
        parts["signature"] = base64.b64decode(OTHER_SIGNATURE)
    bundle = with_rekor_v2_entry(doc, **parts)
    if broken is not None:
        expect_error("tlog_entry_mismatch", bundle, trust(P256), **kwargs)
        return
    document = verify_bundle(bundle, trust(P256), **kwargs)
    [tlog] = document.tlog
    assert (tlog.kind_version, tlog.integrated_time, tlog.inclusion) == ("0.0.2", None, "proof")
    assert len(document.timestamps) == 1  # the RFC 3161 timestamp


# =================================================================================================
# Statements and subjects


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (statement(subject=[]), "subject_missing"),
        (statement(subject=[{"name": "a", "digest": {}}]), "subject_missing"),
        (statement(subject=[{"name": "a"}]), "subject_missing"),
        (statement(subject="a"), "statement_invalid"),
        (statement(subject=[{"name": "a", "digest": {"sha256": 5}}]), "statement_invalid"),
        (statement(_type="https://example.com/Statement"), "statement_invalid"),
        (statement(predicateType=None), "statement_invalid"),
        (b"not json", "statement_invalid"),
        (b"[1, 2]", "statement_invalid"),
    ],
    ids=[
        "empty",
        "empty-digest",
        "no-digest",
        "not-a-list",
        "digest-not-str",
        "type",
        "predicate",
        "json",
        "array",
    ],
)
def test_statement_checks(payload: dict[str, Any] | bytes, code: str) -> None:
    expect_error(code, STACK.sign_dsse(payload), trust())
    expect_error(code, as_v01_promise_only(STACK.sign_dsse(payload)), trust())


def test_payload_type_must_be_in_toto() -> None:
    expect_error(
        "unsupported_format", STACK.sign_dsse(statement(), payload_type="text/plain"), trust()
    )


def test_subject_digests_are_lowercased_and_matched() -> None:
    upper = statement(subject=[{"name": "A", "digest": {"sha256": ARTIFACT_DIGEST[1].upper()}}])
    document = verify_bundle(STACK.sign_dsse(upper), trust(), message_digest=ARTIFACT_DIGEST)
    assert document.subjects[0].digests == {"sha256": ARTIFACT_DIGEST[1]}
    v01 = statement(_type="https://in-toto.io/Statement/v0.1")
    assert verify_bundle(STACK.sign_dsse(v01), trust()).statement == v01
    other = ("sha256", hashlib.sha256(b"other").hexdigest())
    expect_error("subject_mismatch", STACK.sign_dsse(statement()), trust(), message_digest=other)


# =================================================================================================
# Bundle structure


def _with(**changes: Any) -> dict[str, Any]:
    doc = json.loads(keyless_dsse())
    doc.update(changes)
    return doc


@pytest.mark.parametrize(
    ("bundle", "code"),
    [
        (b"{not json", "malformed"),
        (b"[]", "malformed"),
        (_with(mediaType="application/vnd.dev.sigstore.bundle.v0.4+json"), "unsupported_format"),
        (_with(verificationMaterial=None), "malformed"),
        (_with(messageSignature={"signature": b64(b"x")}), "malformed"),
        ({k: v for k, v in _with().items() if k != "dsseEnvelope"}, "malformed"),
    ],
    ids=["json", "array", "media-type", "no-material", "two-contents", "no-content"],
)
def test_bundle_structure(bundle: Any, code: str) -> None:
    expect_error(code, bundle, trust())


def test_exactly_one_log_entry() -> None:
    doc = json.loads(keyless_dsse())
    entries = doc["verificationMaterial"]["tlogEntries"]
    doc["verificationMaterial"]["tlogEntries"] = entries * 2
    expect_error("tlog_proof_invalid", doc, trust())
    doc["verificationMaterial"]["tlogEntries"] = []
    expect_error("tlog_proof_invalid", doc, trust())


def test_exactly_one_dsse_signature() -> None:
    doc = as_v01_promise_only(relog_as_intoto(keyless_dsse()))
    signatures = doc["dsseEnvelope"]["signatures"]
    doc["dsseEnvelope"]["signatures"] = signatures * 2
    expect_error("signature_invalid", doc, trust())
    doc["dsseEnvelope"]["signatures"] = []
    expect_error("signature_invalid", doc, trust())


def test_keyless_needs_a_leaf_certificate() -> None:
    doc = as_v01_promise_only(keyless_dsse())
    doc["verificationMaterial"]["x509CertificateChain"]["certificates"] = []
    expect_error("malformed", doc, trust())
    doc = as_v01_promise_only(keyless_dsse())
    ca = STACK.fulcio.chain[0].public_bytes(serialization.Encoding.DER)
    doc["verificationMaterial"]["x509CertificateChain"]["certificates"] = [{"rawBytes": b64(ca)}]
    expect_error("malformed", doc, trust())


# =================================================================================================
# Trust roots: loading and selection


def test_load_trust_roots_builtin_then_sorted(tmp_path: Path) -> None:
    assert list(load_trust_roots(tmp_path)) == ["public-good", "staging"]
    (tmp_path / "trust").mkdir()
    STACK.write_trusted_root(tmp_path / "trust" / "zeta.json")
    SigstoreTestStack.create("alpha").write_trusted_root(tmp_path / "trust" / "alpha.json")
    (tmp_path / "trust" / "notes.txt").write_text("ignored")
    assert list(load_trust_roots(tmp_path)) == ["public-good", "staging", "alpha", "zeta"]


def test_policy_root_replaces_a_builtin(tmp_path: Path) -> None:
    (tmp_path / "trust").mkdir()
    STACK.write_trusted_root(tmp_path / "trust" / "staging.json")
    roots = load_trust_roots(tmp_path)
    assert list(roots) == ["public-good", "staging"]
    assert verify_bundle(keyless_dsse(), TrustStore(roots=roots)).trust_root == "staging"


@pytest.mark.parametrize(
    "content",
    [
        b"{",
        b"[]",
        b'{"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=9"}',
        json.dumps(
            {
                "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
                "tlogs": [{"baseUrl": 1}],
            }
        ).encode(),
    ],
    ids=["json", "array", "media-type", "field"],
)
def test_bad_trust_root_file_names_the_file(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "trust").mkdir()
    bad = tmp_path / "trust" / "broken.json"
    bad.write_bytes(content)
    with pytest.raises(TrustRootError, match=str(bad)):
        load_trust_roots(tmp_path)


def test_trust_root_without_optional_proto_fields_loads(tmp_path: Path) -> None:
    # sigstore-go and private deployments omit empty lists and CA common names.
    doc = STACK.trusted_root_dict()
    del doc["timestampAuthorities"]
    del doc["certificateAuthorities"][0]["subject"]["commonName"]
    (tmp_path / "trust").mkdir()
    (tmp_path / "trust" / "sparse.json").write_text(json.dumps(doc))
    roots = load_trust_roots(tmp_path)
    assert verify_bundle(keyless_dsse(), TrustStore(roots=roots)).trust_root == "sparse"


def test_builtin_roots_are_the_packages_own() -> None:
    for name in ("public-good", "staging"):
        assert builtin_root_path(name).is_file()


OTHER_STACK = SigstoreTestStack.create("another-sigstore")


def _roots(*names: str) -> dict[str, Any]:
    available = {
        "public-good": load_trusted_root_file(builtin_root_path("public-good")),
        "staging": load_trusted_root_file(builtin_root_path("staging")),
        "test": STACK.trusted_root,
        "other": OTHER_STACK.trusted_root,
    }
    return {name: available[name] for name in names}


def test_each_root_is_tried_in_turn() -> None:
    store = TrustStore(roots=_roots("public-good", "staging", "other", "test"))
    assert verify_bundle(keyless_dsse(), store).trust_root == "test"
    assert verify_bundle(OTHER_STACK.sign_dsse(statement()), store).trust_root == "other"
    assert verify_bundle(relog_as_intoto(keyless_dsse()), store).trust_root == "test"
    # The same root under two names: the first in try order is the primary, both are recorded.
    twice = TrustStore(roots={"first": STACK.trusted_root, "second": STACK.trusted_root})
    verified = verify_bundle(keyless_dsse(), twice)
    assert verified.trust_root == "first"
    assert verified.trust_roots == ["first", "second"]


def test_every_root_sharing_the_issuing_ca_is_recorded() -> None:
    # A custom root that copies a built-in one's Fulcio and Rekor keys (a private mirror, or
    # sigstore-go's public-good.json) must be usable by name, although the built-in is tried
    # first; a root of another CA is not tried once one has verified.
    store = TrustStore(
        roots={
            "public-good": STACK.trusted_root,
            "other": OTHER_STACK.trusted_root,
            "mirror": STACK.trusted_root,
        }
    )
    verified = verify_bundle(keyless_dsse(), store)
    assert verified.trust_roots == ["public-good", "mirror"]


def test_tsa_without_validity_window_loads_and_verifies(tmp_path: Path) -> None:
    doc = STACK.trusted_root_dict()
    assert doc["timestampAuthorities"], "the test stack has a TSA"
    for authority in doc["timestampAuthorities"]:
        del authority["validFor"]
    (tmp_path / "trust").mkdir()
    (tmp_path / "trust" / "no-window.json").write_text(json.dumps(doc))
    roots = load_trust_roots(tmp_path)
    stamped = STACK.sign_dsse(statement(), with_timestamp=True, inclusion_promise=False)
    assert verify_bundle(stamped, TrustStore(roots=roots)).trust_root == "no-window"


def test_no_root_holds_the_signer() -> None:
    store = TrustStore(roots=_roots("public-good", "staging", "other"))
    for bundle in (
        keyless_dsse(),
        relog_as_intoto(keyless_dsse()),
        as_v01_promise_only(keyless_dsse()),
    ):
        expect_error("untrusted_root", bundle, store)
    expect_error("untrusted_root", keyless_dsse(), TrustStore(roots={}))


@pytest.mark.parametrize(
    "tamper", ["bad_signature", "expired_cert", "bad_sct", "tlog_body_mismatch"]
)
def test_the_issuers_root_explains_the_failure(tamper: str) -> None:
    # Other roots fail too ("not my CA"); the error must come from the root that issued it.
    store = TrustStore(roots=_roots("public-good", "other", "test", "staging"))
    expect_error(KEYLESS_DSSE_CODES[tamper], keyless_dsse(tamper), store)
    if tamper != "tlog_body_mismatch":  # relogging would log the bundle's real envelope
        expect_error(KEYLESS_DSSE_CODES[tamper], relog_as_intoto(keyless_dsse(tamper)), store)


# =================================================================================================
# Fulcio certificate facts


def _certificate(extensions: dict[str, bytes], san: x509.GeneralName) -> x509.Certificate:
    key = ec.derive_private_key(0xCE27, ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(datetime(2024, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2024, 1, 2, tzinfo=UTC))
        .add_extension(x509.SubjectAlternativeName([san]), critical=True)
    )
    for oid, value in extensions.items():
        builder = builder.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value), critical=False
        )
    return builder.sign(key, hashes.SHA256())


def test_legacy_issuer_extension_is_the_fallback() -> None:
    cert = _certificate(
        {
            "1.3.6.1.4.1.57264.1.1": b"https://accounts.example.com",
            "1.3.6.1.4.1.57264.1.2": b"push",
        },
        x509.RFC822Name("dev@example.com"),
    )
    facts = signer_facts_from_certificate(cert)
    assert (facts.issuer, facts.san) == ("https://accounts.example.com", "dev@example.com")
    assert facts.extensions == {
        "issuer": "https://accounts.example.com",
        "githubWorkflowTrigger": "push",
    }


def test_issuer_v2_wins_and_unknown_extensions_are_kept() -> None:
    issuer = b"https://v2.issuer.io"
    utf8 = bytes([0x0C, len(issuer)]) + issuer
    cert = _certificate(
        {
            "1.3.6.1.4.1.57264.1.1": b"https://v1.issuer.io",
            "1.3.6.1.4.1.57264.1.8": utf8,
            "1.3.6.1.4.1.57264.1.99": b"\x0c\x03new",
        },
        x509.OtherName(x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.7"), b"\x0c\x0ffoo!example.com"),
    )
    facts = signer_facts_from_certificate(cert)
    assert (facts.issuer, facts.san) == ("https://v2.issuer.io", "foo!example.com")
    assert facts.extensions["issuerV2"] == "https://v2.issuer.io"
    assert facts.extensions["1.3.6.1.4.1.57264.1.99"] == "new"


def test_uri_san_and_full_extension_table() -> None:
    assert len(FULCIO_EXTENSIONS) == 22
    assert FULCIO_EXTENSIONS["1.3.6.1.4.1.57264.1.22"] == "sourceRepositoryVisibilityAtSigning"
    cert = _certificate(
        {}, x509.UniformResourceIdentifier("https://github.com/a/b/w.yml@refs/heads/main")
    )
    facts = signer_facts_from_certificate(cert)
    assert facts.san == "https://github.com/a/b/w.yml@refs/heads/main" and facts.issuer is None


def test_der_utf8string() -> None:
    long_value = "x" * 300
    encoded = b"\x0c\x82\x01\x2c" + long_value.encode()
    assert der_utf8string(encoded) == long_value
    assert der_utf8string(b"\x0c\x02ab") == "ab"
    for bad in (b"", b"\x0c", b"\x13\x02ab", b"\x0c\x03ab", b"\x0c\x80", b"\x0c\x02\xff\xfe"):
        assert der_utf8string(bad) is None


# =================================================================================================
# Real bundles from other projects, mutated (needs ../shared/testdata)


SIGSTORE_JS_V01 = "sigstore-js/tests/bundles/bundleV01-intoto-no-proof.sigstore"


def _real_v01() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((TESTDATA / SIGSTORE_JS_V01).read_text())
    return doc


def _public_good() -> TrustStore:
    return TrustStore(roots=_roots("public-good", "staging"))


def _flip_signature(doc: dict[str, Any]) -> None:
    sig = bytearray(base64.b64decode(doc["dsseEnvelope"]["signatures"][0]["sig"]))
    sig[-1] ^= 0x01
    doc["dsseEnvelope"]["signatures"][0]["sig"] = b64(bytes(sig))


def _flip_payload(doc: dict[str, Any]) -> None:
    payload = base64.b64decode(doc["dsseEnvelope"]["payload"]).replace(b"sigstore", b"sigstorm", 1)
    doc["dsseEnvelope"]["payload"] = b64(payload)


def _bump(field: str) -> Callable[[dict[str, Any]], None]:
    def bump(doc: dict[str, Any]) -> None:
        entry_of(doc)[field] = str(int(entry_of(doc)[field]) + 1)

    return bump


def _drop_promise(doc: dict[str, Any]) -> None:
    del entry_of(doc)["inclusionPromise"]


def _foreign_body(doc: dict[str, Any]) -> None:
    other = json.loads(
        (TESTDATA / "sigstore-js/tests/bundles/bundleV01-dsse-no-proof.sigstore").read_text()
    )
    entry_of(doc)["canonicalizedBody"] = entry_of(other)["canonicalizedBody"]


REAL_MUTATIONS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "flip-signature": (_flip_signature, "signature_invalid"),
    "flip-payload": (_flip_payload, "signature_invalid"),
    "log-index": (_bump("logIndex"), "tlog_proof_invalid"),
    "integrated-time": (_bump("integratedTime"), "tlog_proof_invalid"),
    "no-promise": (_drop_promise, "tlog_proof_invalid"),
    "foreign-body": (_foreign_body, "tlog_proof_invalid"),
}


@needs_testdata
def test_real_promise_only_intoto_bundle_verifies() -> None:
    document = verify_bundle(_real_v01(), _public_good())
    assert document.trust_root == "public-good"
    assert (document.tlog[0].kind, document.tlog[0].inclusion) == ("intoto", "promise")
    assert document.signers[0].san == "brian@dehamer.com"


@needs_testdata
@pytest.mark.parametrize("mutation", REAL_MUTATIONS)
def test_real_promise_only_intoto_bundle_mutated(mutation: str) -> None:
    mutate, code = REAL_MUTATIONS[mutation]
    doc = _real_v01()
    mutate(doc)
    expect_error(code, doc, _public_good())


@needs_testdata
def test_real_npm_publish_attestation_key() -> None:
    npm_dir = TESTDATA / "slsa-verifier/cli/slsa-verifier/testdata/npm/gha"
    path = npm_dir / "supreme-googles-cli-v02-tag.tgz.json"
    attestations = json.loads(path.read_text())["attestations"]
    publish = next(a["bundle"] for a in attestations if "publish" in a["predicateType"])
    pem = (TESTDATA / "sigstore-go/examples/publish_key.pub").read_bytes()
    public = serialization.load_pem_public_key(pem)
    key = TrustedKey(spki_key_id(public), "ecdsa-p256", public, pem.decode(), "npm")
    document = verify_bundle(
        publish, TrustStore(roots=_roots("public-good"), keys={key.key_id: key})
    )
    assert document.signers[0].key_id == key.key_id
    assert (document.tlog[0].kind, document.tlog[0].inclusion) == ("intoto", "promise")
    expect_error("untrusted_key", publish, TrustStore(roots=_roots("public-good")))


def test_documents_are_plain_facts() -> None:
    document = verify_bundle(keyless_dsse(), trust())
    assert isinstance(document, VerifiedDocument)
    json.dumps([s.__dict__ for s in document.subjects])
