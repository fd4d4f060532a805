"""Bare DSSE envelopes signed with plain keys: every check has a failing case.

The key/envelope helpers at the top are shared with the other verification tests.
"""

from __future__ import annotations

import base64
import functools
import json
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from securesystemslib.dsse import Envelope

from app.verification.dsse import verify_dsse_envelope
from app.verification.errors import VerificationError
from app.verification.keyring import TrustedKey, index_public_key, spki_key_id
from app.verification.trust import TrustStore
from tests.sigstore_stack import SigstoreTestStack

KEY_KINDS = ["ecdsa-p256", "ecdsa-p384", "ed25519", "rsa-pss", "rsa-pkcs1v15"]
SCHEMES = {
    "ecdsa-p256": "ecdsa-sha2-nistp256",
    "ecdsa-p384": "ecdsa-sha2-nistp384",
    "ed25519": "ed25519",
    "rsa-pss": "rsassa-pss-sha256",
    "rsa-pkcs1v15": "rsa-pkcs1v15-sha256",
}
PAYLOAD_TYPE = "application/vnd.in-toto+json"
DIGEST = "a" * 64


@dataclass(frozen=True)
class KeyPair:
    kind: str
    private: PrivateKeyTypes

    @property
    def public(self) -> PublicKeyTypes:
        return self.private.public_key()

    @property
    def key_id(self) -> str:
        return spki_key_id(self.public)

    @property
    def scheme(self) -> str:
        return SCHEMES[self.kind]

    def public_pem(self) -> bytes:
        return self.public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, data: bytes) -> bytes:
        key = self.private
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return key.sign(data)
        if isinstance(key, ec.EllipticCurvePrivateKey):
            digest = hashes.SHA384() if key.curve.key_size == 384 else hashes.SHA256()
            return key.sign(data, ec.ECDSA(digest))
        assert isinstance(key, rsa.RSAPrivateKey)
        if self.kind == "rsa-pss":
            pad: padding.AsymmetricPadding = padding.PSS(
                mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH
            )
        else:
            pad = padding.PKCS1v15()
        return key.sign(data, pad, hashes.SHA256())


def new_key(kind: str) -> KeyPair:
    if kind == "ed25519":
        return KeyPair(kind, ed25519.Ed25519PrivateKey.generate())
    if kind.startswith("ecdsa-"):
        curve = ec.SECP384R1() if kind == "ecdsa-p384" else ec.SECP256R1()
        return KeyPair(kind, ec.generate_private_key(curve))
    return KeyPair(kind, rsa.generate_private_key(public_exponent=65537, key_size=2048))


@functools.cache
def cached_key(kind: str, n: int = 0) -> KeyPair:
    """RSA generation is slow; tests that only need *a* key of a kind share one."""
    return new_key(kind)


def trust_of(*keys: KeyPair, pin_scheme: bool = True) -> TrustStore:
    """A trust store holding ``keys`` under all their ids (RSA pinned to its padding)."""
    index: dict[str, TrustedKey] = {}
    for key in keys:
        scheme = key.scheme if pin_scheme else None
        index.update(index_public_key(key.public, f"test/{key.kind}", scheme=scheme))
    return TrustStore(keys=index)


def statement(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "app.tar.gz", "digest": {"sha256": DIGEST}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {"buildType": "https://example.com/build", "externalParameters": {}},
            "runDetails": {"builder": {"id": "https://example.com/builder"}},
        },
    }
    body.update(overrides)
    return body


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def pae(payload_type: str, payload: bytes) -> bytes:
    return Envelope(payload, payload_type, {}).pae()


def sign_envelope(
    payload: bytes | dict[str, Any],
    *signers: KeyPair,
    keyids: list[str] | None = None,
    payload_type: str = PAYLOAD_TYPE,
) -> dict[str, Any]:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    ids = keyids if keyids is not None else [s.key_id for s in signers]
    message = pae(payload_type, raw)
    return {
        "payloadType": payload_type,
        "payload": b64(raw),
        "signatures": [
            {"keyid": kid, "sig": b64(s.sign(message))} for s, kid in zip(signers, ids, strict=True)
        ],
    }


def expect_error(code: str, envelope: dict[str, Any], trust: TrustStore) -> VerificationError:
    with pytest.raises(VerificationError) as info:
        verify_dsse_envelope(envelope, trust)
    assert info.value.code == code, info.value.message
    return info.value


def flip_last_byte(sig_b64: str) -> str:
    raw = bytearray(base64.b64decode(sig_b64))
    raw[-1] ^= 0x01
    return b64(bytes(raw))


# -- good signatures, every key type ------------------------------------------------------------


@pytest.mark.parametrize("kind", KEY_KINDS)
def test_each_key_type_verifies(kind: str) -> None:
    key = cached_key(kind)
    doc = verify_dsse_envelope(sign_envelope(statement(), key), trust_of(key))
    assert doc.format == "dsse"
    assert doc.media_type == PAYLOAD_TYPE
    assert doc.content_kind == "statement"
    assert doc.predicate_type == "https://slsa.dev/provenance/v1"
    assert [(s.name, s.digests) for s in doc.subjects] == [("app.tar.gz", {"sha256": DIGEST})]
    [signer] = doc.signers
    assert signer.kind == "key"
    assert signer.key_id == key.key_id
    assert signer.key_algorithm == kind
    assert signer.public_key_pem == key.public_pem().decode()


@pytest.mark.parametrize("kind", KEY_KINDS)
def test_each_key_type_rejects_tampered_payload(kind: str) -> None:
    key = cached_key(kind)
    envelope = sign_envelope(statement(), key)
    forged = statement(subject=[{"name": "evil", "digest": {"sha256": "b" * 64}}])
    envelope["payload"] = b64(json.dumps(forged).encode())
    error = expect_error("signature_invalid", envelope, trust_of(key))
    assert "changed after signing" in error.message


@pytest.mark.parametrize("kind", KEY_KINDS)
def test_each_key_type_rejects_tampered_signature(kind: str) -> None:
    key = cached_key(kind)
    envelope = sign_envelope(statement(), key)
    envelope["signatures"][0]["sig"] = flip_last_byte(envelope["signatures"][0]["sig"])
    expect_error("signature_invalid", envelope, trust_of(key))


@pytest.mark.parametrize("kind", KEY_KINDS)
def test_each_key_type_rejects_untrusted_key(kind: str) -> None:
    signer, trusted = cached_key(kind), cached_key(kind, 1)
    error = expect_error("untrusted_key", sign_envelope(statement(), signer), trust_of(trusted))
    assert signer.key_id in error.message


def test_payload_type_is_part_of_the_signature() -> None:
    key = cached_key("ecdsa-p256")
    envelope = sign_envelope(statement(), key, payload_type="application/json")
    envelope["payloadType"] = PAYLOAD_TYPE
    expect_error("signature_invalid", envelope, trust_of(key))


def test_rsa_padding_is_pinned_by_scheme() -> None:
    pss = cached_key("rsa-pss")
    as_pkcs1 = KeyPair("rsa-pkcs1v15", pss.private)
    trust = trust_of(pss)  # configured as rsassa-pss-sha256
    expect_error("signature_invalid", sign_envelope(statement(), as_pkcs1), trust)


@pytest.mark.parametrize("kind", ["rsa-pss", "rsa-pkcs1v15"])
def test_rsa_of_unknown_padding_reports_the_padding_used(kind: str) -> None:
    key = cached_key(kind)
    doc = verify_dsse_envelope(sign_envelope(statement(), key), trust_of(key, pin_scheme=False))
    assert doc.signers[0].key_algorithm == kind


def test_ecdsa_p1363_signature_is_accepted() -> None:
    key = cached_key("ecdsa-p256")
    envelope = sign_envelope(statement(), key)
    r, s = decode_dss_signature(base64.b64decode(envelope["signatures"][0]["sig"]))
    envelope["signatures"][0]["sig"] = b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
    assert verify_dsse_envelope(envelope, trust_of(key)).signers[0].key_id == key.key_id
    envelope["payload"] = b64(json.dumps(statement(predicateType="x")).encode())
    expect_error("signature_invalid", envelope, trust_of(key))


# -- key ids ------------------------------------------------------------------------------------


def test_empty_keyid_tries_every_trusted_key() -> None:
    key, other = cached_key("ecdsa-p256"), cached_key("ed25519")
    doc = verify_dsse_envelope(sign_envelope(statement(), key, keyids=[""]), trust_of(other, key))
    assert doc.signers[0].key_id == key.key_id


def test_missing_keyid_field_is_like_empty() -> None:
    key = cached_key("ed25519")
    envelope = sign_envelope(statement(), key)
    del envelope["signatures"][0]["keyid"]
    assert verify_dsse_envelope(envelope, trust_of(key)).signers[0].key_id == key.key_id


def test_unknown_keyid_tries_every_trusted_key() -> None:
    key = cached_key("ecdsa-p384")
    envelope = sign_envelope(statement(), key, keyids=["gcpkms://projects/p/keys/k"])
    assert verify_dsse_envelope(envelope, trust_of(key)).signers[0].key_id == key.key_id


def test_unknown_keyid_and_no_trusted_key_verifies() -> None:
    key, trusted = cached_key("ecdsa-p256"), cached_key("ecdsa-p256", 1)
    envelope = sign_envelope(statement(), key, keyids=["kms://nobody"])
    error = expect_error("untrusted_key", envelope, trust_of(trusted))
    assert "kms://nobody" in error.message
    assert error.details == {"keyids": ["kms://nobody"]}


def test_empty_keyid_with_tampered_payload_fails() -> None:
    key = cached_key("ed25519")
    envelope = sign_envelope(statement(), key, keyids=[""])
    envelope["payload"] = b64(json.dumps(statement(predicateType="x")).encode())
    expect_error("untrusted_key", envelope, trust_of(key))


def test_keyid_of_another_trusted_key_is_a_bad_signature() -> None:
    signer, named = cached_key("ecdsa-p256"), cached_key("ed25519")
    envelope = sign_envelope(statement(), signer, keyids=[named.key_id])
    expect_error("signature_invalid", envelope, trust_of(signer, named))


def test_empty_trust_store_is_untrusted() -> None:
    envelope = sign_envelope(statement(), cached_key("ed25519"))
    expect_error("untrusted_key", envelope, TrustStore())


# -- several signatures -------------------------------------------------------------------------


def test_all_valid_signers_are_reported_once() -> None:
    a, b = cached_key("ecdsa-p256"), cached_key("ed25519")
    envelope = sign_envelope(statement(), a, b, a, keyids=[a.key_id, b.key_id, ""])
    doc = verify_dsse_envelope(envelope, trust_of(a, b))
    assert [s.key_id for s in doc.signers] == [a.key_id, b.key_id]


def test_untrusted_cosigner_is_ignored() -> None:
    trusted, stranger = cached_key("ecdsa-p256"), cached_key("ecdsa-p384")
    doc = verify_dsse_envelope(sign_envelope(statement(), stranger, trusted), trust_of(trusted))
    assert [s.key_id for s in doc.signers] == [trusted.key_id]


def test_one_bad_signature_by_a_trusted_key_fails_the_envelope() -> None:
    a, b = cached_key("ecdsa-p256"), cached_key("ed25519")
    envelope = sign_envelope(statement(), a, b)
    envelope["signatures"][1]["sig"] = flip_last_byte(envelope["signatures"][1]["sig"])
    expect_error("signature_invalid", envelope, trust_of(a, b))


def test_no_signatures() -> None:
    envelope = sign_envelope(statement())
    assert envelope["signatures"] == []
    expect_error("signature_invalid", envelope, trust_of(cached_key("ed25519")))


# -- envelope and statement shape ---------------------------------------------------------------


def test_url_safe_unpadded_base64_is_accepted() -> None:
    key = cached_key("ed25519")
    envelope = sign_envelope(statement(), key)
    envelope["payload"] = base64.urlsafe_b64encode(base64.b64decode(envelope["payload"]))
    envelope["payload"] = envelope["payload"].decode().rstrip("=")
    assert verify_dsse_envelope(envelope, trust_of(key)).subjects


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda e: e.update(payload="not base64!"), "malformed"),
        (lambda e: e.pop("payloadType"), "malformed"),
        (lambda e: e.update(signatures={"sig": "x"}), "malformed"),
        (lambda e: e["signatures"].append("x"), "malformed"),
        (lambda e: e["signatures"][0].update(sig="%%%"), "malformed"),
        (lambda e: e["signatures"][0].update(keyid=7), "malformed"),
        (lambda e: e.update(payloadType="text/plain"), "unsupported_format"),
    ],
)
def test_malformed_envelopes(mutate: Any, code: str) -> None:
    key = cached_key("ed25519")
    envelope = sign_envelope(statement(), key)
    mutate(envelope)
    expect_error(code, envelope, trust_of(key))


def test_payload_not_json() -> None:
    key = cached_key("ed25519")
    expect_error("malformed", sign_envelope(b"\x00not json", key), trust_of(key))


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (statement(subject=[]), "subject_missing"),
        ({k: v for k, v in statement().items() if k != "subject"}, "subject_missing"),
        (statement(subject=[{"name": "x", "digest": {}}]), "subject_missing"),
        (statement(_type="https://in-toto.io/Statement/v2"), "statement_invalid"),
        (statement(predicateType=""), "statement_invalid"),
        (statement(predicate=None), "statement_invalid"),
        (statement(subject=[{"name": "x", "digest": {"sha256": "abc"}}]), "statement_invalid"),
        (["not", "an", "object"], "malformed"),
    ],
)
def test_signed_but_invalid_statements(body: Any, code: str) -> None:
    key = cached_key("ed25519")
    expect_error(code, sign_envelope(json.dumps(body).encode(), key), trust_of(key))


def test_signature_is_checked_before_the_statement() -> None:
    key = cached_key("ed25519")
    envelope = sign_envelope(statement(subject=[]), key)
    envelope["signatures"][0]["sig"] = flip_last_byte(envelope["signatures"][0]["sig"])
    expect_error("signature_invalid", envelope, trust_of(key))


def test_subject_digests_are_lowercased() -> None:
    key = cached_key("ed25519")
    body = statement(subject=[{"name": "a", "digest": {"sha256": "AB" * 32}}])
    doc = verify_dsse_envelope(sign_envelope(body, key), trust_of(key))
    assert doc.subjects[0].digests == {"sha256": "ab" * 32}
    assert doc.statement is not None
    assert doc.statement["subject"][0]["digest"] == {"sha256": "ab" * 32}


def test_dsse_wrapped_link_is_verified_as_a_link() -> None:
    key = cached_key("ed25519")
    link = {
        "_type": "link",
        "name": "build",
        "command": [],
        "materials": {},
        "products": {"out.bin": {"sha256": DIGEST}},
        "byproducts": {},
        "environment": {},
    }
    doc = verify_dsse_envelope(sign_envelope(link, key), trust_of(key))
    assert (doc.format, doc.content_kind) == ("intoto-link", "link")
    assert doc.subjects[0].name == "out.bin"


def test_certificate_signed_envelope_without_tlog_evidence_has_its_own_code(
    stack: SigstoreTestStack,
) -> None:
    """A keyless envelope stripped of its bundle (cosign's ``signatures[].cert`` form) cannot
    be verified, and the advice is to upload the bundle, not to configure a key."""
    bundle = json.loads(stack.sign_dsse(statement()))
    envelope = bundle["dsseEnvelope"]
    der = base64.b64decode(bundle["verificationMaterial"]["certificate"]["rawBytes"])
    pem_cert = (
        "-----BEGIN CERTIFICATE-----\n"
        + base64.encodebytes(der).decode()
        + "-----END CERTIFICATE-----\n"
    )
    envelope["signatures"][0]["cert"] = pem_cert
    error = expect_error("tlog_evidence_missing", envelope, trust_of(cached_key("ecdsa-p256")))
    assert "upload the Sigstore bundle" in error.message
    assert "policies/keys" not in error.message
    # Without a certificate the advice stays: configure the key.
    del envelope["signatures"][0]["cert"]
    expect_error("untrusted_key", envelope, trust_of(cached_key("ecdsa-p256")))
