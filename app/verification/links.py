"""in-toto link metadata: classic ``{"signed", "signatures"}`` links and DSSE-wrapped links.

Forms accepted (all signed by functionary keys from layouts or ``policies/keys``):

- classic: signatures (hex) over the canonical JSON of ``signed`` (in-toto <= 1.x, in-toto-golang)
- DSSE with the link itself as payload (``in-toto-run --use-dsse``, in-toto 2+/3.x)
- DSSE with an in-toto Statement of predicateType ``https://in-toto.io/attestation/link/v0.3``

Facts: ``content_kind="link"``; for the first two forms ``statement`` is the link body as
signed, ``subjects`` are its products and ``predicate_type`` is ``LINK_PREDICATE_TYPE`` (the
name the attestation framework gave classic links); for v0.3 statements the Statement itself,
its subjects and its predicateType. A link without products is valid in-toto (a step may only
consume) and yields no subjects. Layout rules are not applied here: that is the policy engine.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from securesystemslib.exceptions import FormatError
from securesystemslib.formats import encode_canonical

from app.verification.dsse import (
    IN_TOTO_PAYLOAD_TYPE,
    DecodedEnvelope,
    RawSignature,
    check_signature_count,
    decode_envelope,
    verify_signatures,
)
from app.verification.errors import (
    MALFORMED,
    STATEMENT_INVALID,
    UNSUPPORTED_FORMAT,
    VerificationError,
)
from app.verification.facts import SignerFacts, Subject, VerifiedDocument
from app.verification.statement import STATEMENT_TYPES, normalise_digests, parse_statement
from app.verification.trust import TrustStore

LINK_PREDICATE_TYPE = "https://in-toto.io/Link/v1"
LINK_V03_PREDICATE_TYPE = "https://in-toto.io/attestation/link/v0.3"


def is_link_payload(body: Mapping[str, Any]) -> bool:
    """True for a link body, or a Statement whose predicate is an in-toto link."""
    if body.get("_type") == "link":
        return True
    return body.get("_type") in STATEMENT_TYPES and body.get("predicateType") == (
        LINK_V03_PREDICATE_TYPE
    )


def verify_link(document: Mapping[str, Any], trust: TrustStore) -> VerifiedDocument:
    """Verify an in-toto link in either form.

    Raises VerificationError: ``malformed``, ``unsupported_format``, ``signature_invalid``,
    ``untrusted_key``, ``statement_invalid``, ``subject_missing`` (v0.3 statements only).
    """
    if "signed" in document:
        return verify_classic_link(document, trust)
    if "payload" in document:
        decoded = decode_envelope(document)
        if decoded.payload_type != IN_TOTO_PAYLOAD_TYPE:
            raise VerificationError(
                UNSUPPORTED_FORMAT,
                f"DSSE payloadType {decoded.payload_type!r} is not an in-toto link",
            )
        return verify_dsse_link(decoded, trust)
    raise VerificationError(MALFORMED, "not an in-toto link: no 'signed' body or DSSE payload")


def verify_classic_link(document: Mapping[str, Any], trust: TrustStore) -> VerifiedDocument:
    signed = document.get("signed")
    if not isinstance(signed, dict) or signed.get("_type") != "link":
        kind = signed.get("_type") if isinstance(signed, dict) else None
        if kind == "layout":
            raise VerificationError(
                UNSUPPORTED_FORMAT,
                "this is an in-toto layout, not a link: layouts are policy and belong in "
                "policies/layouts",
            )
        raise VerificationError(MALFORMED, "metadata 'signed' is not an in-toto link")
    name = _validate_link(signed)
    signatures = _classic_signatures(document.get("signatures"))
    try:
        # Signers canonicalise the body they hold; verifying the body as received (not a
        # re-serialised model) keeps fields a newer in-toto adds covered by the signature.
        message = encode_canonical(signed).encode("utf-8")
    except FormatError as exc:
        raise VerificationError(MALFORMED, f"link cannot be canonicalised: {exc}") from exc
    signers = verify_signatures(signatures, message, trust, f"in-toto link {name!r}")
    return _link_document(signed, signers, media_type=None)


def verify_dsse_link(decoded: DecodedEnvelope, trust: TrustStore) -> VerifiedDocument:
    body = decoded.payload_json()
    if not is_link_payload(body):
        raise VerificationError(UNSUPPORTED_FORMAT, "the DSSE payload is not an in-toto link")
    what = f"in-toto link {body.get('name', '')!r}" if body.get("_type") == "link" else "link"
    signers = verify_signatures(decoded.signatures, decoded.pae(), trust, what)
    if body.get("_type") == "link":
        _validate_link(body)
        return _link_document(body, signers, media_type=decoded.payload_type)
    parsed = parse_statement(body)
    predicate = parsed.statement["predicate"]
    if not isinstance(predicate.get("name"), str) or not predicate["name"]:
        raise VerificationError(STATEMENT_INVALID, "link predicate has no step name")
    return VerifiedDocument(
        format="intoto-link",
        media_type=decoded.payload_type,
        signers=signers,
        trust_root=None,
        content_kind="link",
        statement=parsed.statement,
        predicate_type=parsed.predicate_type,
        subjects=parsed.subjects,
    )


def _validate_link(body: dict[str, Any]) -> str:
    from in_toto.models.link import Link

    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise VerificationError(STATEMENT_INVALID, "in-toto link has no step name")
    try:
        # in-toto's own model checks the field types and the hex of every artifact digest.
        Link.read(copy.deepcopy(body))
    except (FormatError, TypeError, ValueError) as exc:
        raise VerificationError(STATEMENT_INVALID, f"invalid in-toto link {name!r}: {exc}") from exc
    return name


def _classic_signatures(value: object) -> list[RawSignature]:
    if not isinstance(value, list):
        raise VerificationError(MALFORMED, "link 'signatures' must be a list")
    check_signature_count(len(value), "in-toto link")
    signatures = []
    for index, entry in enumerate(value):
        if not isinstance(entry, Mapping):
            raise VerificationError(MALFORMED, f"link signatures[{index}] is not an object")
        if "other_headers" in entry:
            raise VerificationError(
                UNSUPPORTED_FORMAT, "OpenPGP-signed links are not supported; sign with a key"
            )
        keyid, sig = entry.get("keyid"), entry.get("sig")
        if not isinstance(keyid, str) or not isinstance(sig, str):
            raise VerificationError(MALFORMED, f"link signatures[{index}] needs keyid and sig")
        try:
            signatures.append(RawSignature(keyid, bytes.fromhex(sig)))
        except ValueError as exc:
            raise VerificationError(MALFORMED, f"link signatures[{index}].sig is not hex") from exc
    return signatures


def _link_document(
    body: dict[str, Any], signers: list[SignerFacts], media_type: str | None
) -> VerifiedDocument:
    products = body.get("products") or {}
    subjects = [
        Subject(name=path, digests=normalise_digests(digests))
        for path, digests in sorted(products.items())
    ]
    return VerifiedDocument(
        format="intoto-link",
        media_type=media_type,
        signers=signers,
        trust_root=None,
        content_kind="link",
        statement=body,
        predicate_type=LINK_PREDICATE_TYPE,
        subjects=subjects,
    )
