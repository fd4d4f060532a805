"""Format detection, JSON Lines splitting and verify_document dispatch."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest

from app.verification.errors import VerificationError
from app.verification.formats import detect_format, split_jsonl
from app.verification.trust import TrustStore
from app.verification.verify import verify_document
from tests.sigstore_stack import SigstoreTestStack
from tests.verification.test_dsse import cached_key, sign_envelope, statement, trust_of
from tests.verification.test_links import classic, dsse

BUNDLE = {
    "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
    "verificationMaterial": {"certificate": {"rawBytes": "AA=="}},
    "dsseEnvelope": {"payload": "", "payloadType": "application/vnd.in-toto+json"},
}


def encode(document: Any) -> bytes:
    return json.dumps(document).encode()


def detect_error(data: bytes, content_type: str | None = None) -> VerificationError:
    with pytest.raises(VerificationError) as info:
        detect_format(data, content_type)
    return info.value


# -- detect_format ------------------------------------------------------------------------------


def test_bundles() -> None:
    assert detect_format(encode(BUNDLE)) == "sigstore-bundle"
    legacy = BUNDLE | {"mediaType": "application/vnd.dev.sigstore.bundle+json;version=0.1"}
    assert detect_format(encode(legacy)) == "sigstore-bundle"
    no_media_type = {k: v for k, v in BUNDLE.items() if k != "mediaType"}
    assert detect_format(encode(no_media_type)) == "sigstore-bundle"
    message = {"verificationMaterial": {}, "messageSignature": {}}
    assert detect_format(encode(message)) == "sigstore-bundle"


def test_dsse_and_links() -> None:
    key = cached_key("ed25519")
    assert detect_format(encode(sign_envelope(statement(), key))) == "dsse"
    assert detect_format(encode(classic(key))) == "intoto-link"
    assert detect_format(encode(dsse(key))) == "intoto-link"
    # An undecodable payload is still a DSSE envelope; verification explains what is wrong.
    assert detect_format(encode({"payloadType": "x", "payload": "%%", "signatures": []})) == "dsse"


def test_pretty_printed_bom_and_content_type_do_not_matter() -> None:
    pretty = json.dumps(BUNDLE, indent=2).encode()
    assert detect_format(b"\xef\xbb\xbf" + pretty, "application/octet-stream") == (
        "sigstore-bundle"
    )


def test_jsonl() -> None:
    two = encode(BUNDLE) + b"\n" + encode(BUNDLE) + b"\n"
    assert detect_format(two) == "jsonl"
    assert detect_format(two.replace(b"\n", b"\r\n")) == "jsonl"
    # A one-line .intoto.jsonl is also a plain JSON document; the Content-Type says which.
    assert detect_format(encode(BUNDLE)) == "sigstore-bundle"
    assert detect_format(encode(BUNDLE), "application/x-ndjson; charset=utf-8") == "jsonl"
    assert detect_format(encode(BUNDLE), "application/jsonl") == "jsonl"


@pytest.mark.parametrize(
    ("data", "code", "fragment"),
    [
        (b"", "malformed", "empty"),
        (b"  \n", "malformed", "empty"),
        (b"\x89PNG\r\n\x1a\n\x00\xff", "malformed", "binary"),
        (b"MEUCIQDx1t+signature==", "malformed", "not JSON"),
        (b'{"a": 1,', "malformed", "line 1 column"),
        (b"{\n  bad\n}\n", "malformed", "not JSON"),
        (b"[1, 2]", "unsupported_format", "JSON array"),
        (b'"text"', "unsupported_format", "JSON str"),
        (b'{"foo": 1, "bar": 2}', "unsupported_format", "keys [bar, foo]"),
        (
            encode({"_type": "https://in-toto.io/Statement/v1", "predicateType": "x"}),
            "unsupported_format",
            "unsigned in-toto Statement",
        ),
        (
            encode({"signed": {"_type": "layout"}, "signatures": []}),
            "unsupported_format",
            "in-toto layout",
        ),
        (
            encode({"signed": {"_type": "root"}, "signatures": []}),
            "unsupported_format",
            "'root'",
        ),
        (encode({"attestations": []}), "unsupported_format", "npm attestations"),
        (
            encode(
                {
                    "payloadType": "application/vnd.in-toto+json",
                    "payload": base64.b64encode(b'{"_type": "layout"}').decode(),
                    "signatures": [],
                }
            ),
            "unsupported_format",
            "in-toto layout",
        ),
    ],
)
def test_detect_errors_say_what_was_found(data: bytes, code: str, fragment: str) -> None:
    error = detect_error(data)
    assert error.code == code
    assert fragment in error.message


# -- split_jsonl --------------------------------------------------------------------------------


def test_split_jsonl() -> None:
    data = b'{"a": 1}\n\n  {"b": 2}  \r\n\n{"c": 3}'
    assert split_jsonl(data) == [b'{"a": 1}', b'{"b": 2}', b'{"c": 3}']


def test_split_jsonl_empty() -> None:
    with pytest.raises(VerificationError) as info:
        split_jsonl(b"\n \n")
    assert info.value.code == "malformed"


# -- verify_document ----------------------------------------------------------------------------


def test_verify_document_dsse_and_link() -> None:
    key = cached_key("ecdsa-p256")
    trust = trust_of(key)
    assert verify_document(encode(sign_envelope(statement(), key)), trust).format == "dsse"
    assert verify_document(encode(classic(key)), trust).format == "intoto-link"
    assert verify_document(encode(dsse(key)), trust).format == "intoto-link"


def test_verify_document_propagates_verification_errors() -> None:
    key = cached_key("ecdsa-p256")
    document = classic(key)
    document["signed"]["name"] = "other"
    with pytest.raises(VerificationError) as info:
        verify_document(encode(document), trust_of(key))
    assert info.value.code == "signature_invalid"


def test_verify_document_refuses_jsonl() -> None:
    key = cached_key("ecdsa-p256")
    line = encode(sign_envelope(statement(), key))
    with pytest.raises(VerificationError) as info:
        verify_document(line + b"\n" + line, trust_of(key))
    assert info.value.code == "unsupported_format"
    assert "split_jsonl" in info.value.message
    # ... but each split line verifies on its own.
    for part in split_jsonl(line + b"\n" + line):
        assert verify_document(part, trust_of(key)).subjects


def test_verify_document_hands_bundles_to_the_bundle_module(stack: SigstoreTestStack) -> None:
    """Real bundles from the private stack go through the Sigstore path, digest included."""
    from app.verification.errors import VerificationError

    trust = TrustStore(roots={"test-stack": stack.trusted_root})
    artifact = b"artifact bytes"
    digest = hashlib.sha256(artifact).hexdigest()
    bundle = stack.sign_artifact(artifact).encode()
    doc = verify_document(bundle, trust, message_digest=("sha256", digest))
    assert (doc.format, doc.content_kind, doc.trust_root) == (
        "sigstore-bundle",
        "message-signature",
        "test-stack",
    )
    with pytest.raises(VerificationError):
        verify_document(bundle, trust, message_digest=("sha256", "ab" * 32))
