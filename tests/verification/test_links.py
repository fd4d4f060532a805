"""in-toto links, classic and DSSE, made by the in-toto library itself (as in-toto 3.1 emits)."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import attr
import pytest
from in_toto.models.link import Link
from in_toto.models.metadata import Envelope, Metablock
from securesystemslib.formats import encode_canonical
from securesystemslib.signer import CryptoSigner, SSlibKey

from app.verification.errors import VerificationError
from app.verification.links import (
    LINK_PREDICATE_TYPE,
    LINK_V03_PREDICATE_TYPE,
    verify_link,
)
from app.verification.trust import TrustStore
from tests.verification.test_dsse import (
    DIGEST,
    KEY_KINDS,
    KeyPair,
    b64,
    cached_key,
    flip_last_byte,
    sign_envelope,
    trust_of,
)

PRODUCTS = {"dist/app.tar.gz": {"sha256": DIGEST, "sha512": "c" * 128}}


def signer_for(key: KeyPair) -> CryptoSigner:
    return CryptoSigner(key.private, SSlibKey.from_crypto(key.public, scheme=key.scheme))


def make_link(**fields: Any) -> Link:
    base: dict[str, Any] = {
        "name": "package",
        "command": ["tar", "czf", "dist/app.tar.gz", "src"],
        "materials": {"src/main.py": {"sha256": "d" * 64}},
        "products": PRODUCTS,
        "byproducts": {"return-value": 0, "stdout": "", "stderr": ""},
        "environment": {},
    }
    return Link(**(base | fields))


def classic(key: KeyPair, link: Link | None = None) -> dict[str, Any]:
    metablock = Metablock(signed=link or make_link())
    metablock.create_signature(signer_for(key))
    return json.loads(repr(metablock))


def dsse(key: KeyPair, link: Link | None = None) -> dict[str, Any]:
    envelope = Envelope.from_signable(link or make_link())
    envelope.create_signature(signer_for(key))
    return envelope.to_dict()


def expect_error(code: str, document: dict[str, Any], trust: TrustStore) -> VerificationError:
    with pytest.raises(VerificationError) as info:
        verify_link(document, trust)
    assert info.value.code == code, info.value.message
    return info.value


def sign_classic_body(body: dict[str, Any], key: KeyPair) -> dict[str, Any]:
    """Sign a body the in-toto model would refuse to build."""
    message = encode_canonical(body).encode()
    return {"signed": body, "signatures": [{"keyid": key.key_id, "sig": key.sign(message).hex()}]}


# -- every key type, both forms -----------------------------------------------------------------


@pytest.mark.parametrize("form", [classic, dsse])
@pytest.mark.parametrize("kind", KEY_KINDS)
def test_link_verifies(kind: str, form: Any) -> None:
    key = cached_key(kind)
    doc = verify_link(form(key), trust_of(key))
    assert doc.format == "intoto-link"
    assert doc.content_kind == "link"
    assert doc.predicate_type == LINK_PREDICATE_TYPE
    assert doc.media_type == (None if form is classic else "application/vnd.in-toto+json")
    assert [(s.name, s.digests) for s in doc.subjects] == [
        ("dist/app.tar.gz", PRODUCTS["dist/app.tar.gz"])
    ]
    assert doc.statement is not None and doc.statement["name"] == "package"
    assert doc.statement["materials"] == {"src/main.py": {"sha256": "d" * 64}}
    [signer] = doc.signers
    assert (signer.key_id, signer.key_algorithm) == (key.key_id, kind)


@pytest.mark.parametrize("kind", KEY_KINDS)
def test_classic_tampered_product(kind: str) -> None:
    key = cached_key(kind)
    document = classic(key)
    document["signed"]["products"]["dist/app.tar.gz"]["sha256"] = "e" * 64
    expect_error("signature_invalid", document, trust_of(key))


@pytest.mark.parametrize("kind", KEY_KINDS)
def test_classic_tampered_signature(kind: str) -> None:
    key = cached_key(kind)
    document = classic(key)
    sig = bytearray.fromhex(document["signatures"][0]["sig"])
    sig[-1] ^= 1
    document["signatures"][0]["sig"] = sig.hex()
    expect_error("signature_invalid", document, trust_of(key))


@pytest.mark.parametrize("kind", KEY_KINDS)
def test_classic_wrong_key(kind: str) -> None:
    key, trusted = cached_key(kind), cached_key(kind, 1)
    expect_error("untrusted_key", classic(key), trust_of(trusted))


@pytest.mark.parametrize("kind", KEY_KINDS)
def test_dsse_tampered_payload(kind: str) -> None:
    key = cached_key(kind)
    document = dsse(key)
    body = json.loads(base64.b64decode(document["payload"]))
    body["products"] = {"evil": {"sha256": "e" * 64}}
    document["payload"] = b64(json.dumps(body).encode())
    expect_error("signature_invalid", document, trust_of(key))


@pytest.mark.parametrize("kind", KEY_KINDS)
def test_dsse_tampered_signature_and_wrong_key(kind: str) -> None:
    key = cached_key(kind)
    document = dsse(key)
    expect_error("untrusted_key", document, trust_of(cached_key(kind, 1)))
    document["signatures"][0]["sig"] = flip_last_byte(document["signatures"][0]["sig"])
    expect_error("signature_invalid", document, trust_of(key))


def test_classic_signature_over_a_reordered_body_still_verifies() -> None:
    # Canonical JSON is what is signed: key order in the uploaded file does not matter.
    key = cached_key("ed25519")
    document = classic(key)
    document["signed"] = dict(reversed(list(document["signed"].items())))
    assert verify_link(document, trust_of(key)).subjects


def test_extra_signed_field_is_covered_by_the_signature() -> None:
    key = cached_key("ed25519")
    document = classic(key)
    document["signed"]["x-note"] = "added later"
    expect_error("signature_invalid", document, trust_of(key))


def test_unknown_keyid_falls_back_to_trusted_keys() -> None:
    key = cached_key("ecdsa-p256")
    document = classic(key)
    document["signatures"][0]["keyid"] = "0" * 64
    assert verify_link(document, trust_of(key)).signers[0].key_id == key.key_id


def test_two_functionaries() -> None:
    a, b = cached_key("ecdsa-p256"), cached_key("ed25519")
    metablock = Metablock(signed=make_link())
    metablock.create_signature(signer_for(a))
    metablock.create_signature(signer_for(b))
    doc = verify_link(json.loads(repr(metablock)), trust_of(a, b))
    assert {s.key_id for s in doc.signers} == {a.key_id, b.key_id}


# -- shapes -------------------------------------------------------------------------------------


def test_link_without_products_has_no_subjects() -> None:
    key = cached_key("ed25519")
    doc = verify_link(classic(key, make_link(products={})), trust_of(key))
    assert doc.subjects == []


def test_product_digests_are_lowercased_but_signed_body_kept() -> None:
    key = cached_key("ed25519")
    link = make_link(products={"a": {"sha256": "AB" * 32}})
    doc = verify_link(classic(key, link), trust_of(key))
    assert doc.subjects[0].digests == {"sha256": "ab" * 32}
    assert doc.statement is not None
    assert doc.statement["products"]["a"]["sha256"] == "AB" * 32


@pytest.mark.parametrize(
    "change",
    [
        {"materials": []},
        {"products": {"a": {"sha256": "not hex"}}},
        {"command": "tar"},
        {"name": ""},
    ],
)
def test_signed_but_invalid_link(change: dict[str, Any]) -> None:
    key = cached_key("ed25519")
    body = attr.asdict(make_link())
    body.update(change)
    expect_error("statement_invalid", sign_classic_body(body, key), trust_of(key))


def test_link_signatures_shapes() -> None:
    key = cached_key("ed25519")
    trust = trust_of(key)
    document = classic(key)
    bad_hex = copy.deepcopy(document)
    bad_hex["signatures"][0]["sig"] = "zz"
    expect_error("malformed", bad_hex, trust)
    no_list = copy.deepcopy(document)
    no_list["signatures"] = {}
    expect_error("malformed", no_list, trust)
    no_sig = copy.deepcopy(document)
    del no_sig["signatures"][0]["sig"]
    expect_error("malformed", no_sig, trust)
    unsigned = copy.deepcopy(document)
    unsigned["signatures"] = []
    expect_error("signature_invalid", unsigned, trust)
    pgp = copy.deepcopy(document)
    pgp["signatures"] = [{"keyid": "ab", "signature": "00", "other_headers": "00"}]
    expect_error("unsupported_format", pgp, trust)


def test_layout_is_not_a_link() -> None:
    document = {"signed": {"_type": "layout", "steps": []}, "signatures": []}
    error = expect_error("unsupported_format", document, TrustStore())
    assert "policies/layouts" in error.message


def test_neither_form() -> None:
    expect_error("malformed", {"hello": "world"}, TrustStore())
    expect_error("malformed", {"signed": {"_type": "other"}, "signatures": []}, TrustStore())


def test_dsse_that_is_not_a_link() -> None:
    key = cached_key("ed25519")
    envelope = sign_envelope({"_type": "https://in-toto.io/Statement/v1"}, key)
    expect_error("unsupported_format", envelope, trust_of(key))
    envelope["payloadType"] = "text/plain"
    expect_error("unsupported_format", envelope, trust_of(key))


# -- link v0.3 predicate in a Statement --------------------------------------------------------


def link_statement(**predicate: Any) -> dict[str, Any]:
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "dist/app.tar.gz", "digest": {"sha256": DIGEST}}],
        "predicateType": LINK_V03_PREDICATE_TYPE,
        "predicate": {"name": "package", "command": ["make"], "materials": []} | predicate,
    }


def test_link_v03_statement() -> None:
    key = cached_key("ecdsa-p256")
    doc = verify_link(sign_envelope(link_statement(), key), trust_of(key))
    assert (doc.format, doc.content_kind) == ("intoto-link", "link")
    assert doc.predicate_type == LINK_V03_PREDICATE_TYPE
    assert doc.subjects[0].digests == {"sha256": DIGEST}
    assert doc.statement is not None and doc.statement["predicate"]["name"] == "package"


def test_link_v03_statement_failures() -> None:
    key = cached_key("ecdsa-p256")
    envelope = sign_envelope(link_statement(), key)
    envelope["payload"] = b64(json.dumps(link_statement(name="evil")).encode())
    expect_error("signature_invalid", envelope, trust_of(key))
    expect_error("statement_invalid", sign_envelope(link_statement(name=""), key), trust_of(key))
    no_subject = link_statement() | {"subject": []}
    expect_error("subject_missing", sign_envelope(no_subject, key), trust_of(key))
