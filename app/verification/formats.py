"""Recognise what a CI pipeline uploaded, and say clearly what is wrong when we cannot.

The body decides, not the Content-Type: CI tools send ``application/json`` or
``application/octet-stream`` for everything. The Content-Type only marks a JSON Lines upload
that happens to hold a single line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from app import limits
from app.verification import strict_json
from app.verification.dsse import b64decode
from app.verification.errors import (
    MALFORMED,
    TOO_MANY_LINES,
    UNSUPPORTED_FORMAT,
    VerificationError,
)
from app.verification.links import is_link_payload
from app.verification.statement import STATEMENT_TYPES

UploadFormat = Literal["sigstore-bundle", "dsse", "intoto-link", "jsonl"]

BUNDLE_MEDIA_TYPE_PREFIX = "application/vnd.dev.sigstore.bundle"
JSONL_CONTENT_TYPES = frozenset(
    {
        "application/jsonl",
        "application/x-jsonl",
        "application/jsonlines",
        "application/x-jsonlines",
        "application/x-ndjson",
        "application/ndjson",
    }
)
_EXPECTED = "a Sigstore bundle, a DSSE envelope, an in-toto link, or .intoto.jsonl"
_LAYOUT_MESSAGE = (
    "an in-toto layout: layouts are policy, put them in policies/layouts; upload the links "
    "(*.link) the layout's steps produce"
)


@dataclass(frozen=True)
class DetectedUpload:
    format: UploadFormat
    document: dict[str, Any] | None  # the parsed JSON object; None for jsonl


def detect_format(data: bytes, content_type: str | None = None) -> UploadFormat:
    """One of "sigstore-bundle", "dsse", "intoto-link", "jsonl".

    Raises VerificationError ``malformed`` (empty, binary, not JSON) or ``unsupported_format``
    (JSON of another shape), with a message saying what was found and what is expected.
    """
    return sniff(data, content_type).format


def sniff(data: bytes, content_type: str | None = None) -> DetectedUpload:
    """``detect_format`` that also hands back the parsed document, so it is parsed once."""
    text = _text(data)
    if _media_type(content_type) in JSONL_CONTENT_TYPES:
        return DetectedUpload("jsonl", None)
    try:
        document = strict_json.loads(text, "the upload")
    except VerificationError as exc:
        if exc.code != MALFORMED:
            raise
        if _looks_like_jsonl(text):
            return DetectedUpload("jsonl", None)
        raise VerificationError(MALFORMED, f"{exc.message}; expected {_EXPECTED}") from exc
    if isinstance(document, list):
        raise VerificationError(
            UNSUPPORTED_FORMAT,
            "a JSON array: upload one document per request, or several as .intoto.jsonl "
            "(one JSON document per line)",
        )
    if not isinstance(document, dict):
        raise VerificationError(
            UNSUPPORTED_FORMAT, f"JSON {type(document).__name__}, expected {_EXPECTED}"
        )
    return DetectedUpload(classify(document), document)


def classify(document: dict[str, Any]) -> Literal["sigstore-bundle", "dsse", "intoto-link"]:
    """The format of one parsed JSON document (a line of .intoto.jsonl, or a whole upload)."""
    media_type = document.get("mediaType")
    if isinstance(media_type, str) and media_type.startswith(BUNDLE_MEDIA_TYPE_PREFIX):
        return "sigstore-bundle"
    if "verificationMaterial" in document and (
        "dsseEnvelope" in document or "messageSignature" in document
    ):
        return "sigstore-bundle"
    if "payloadType" in document and "payload" in document:
        body = _peek_payload(document.get("payload"))
        if body is not None and body.get("_type") == "layout":
            raise VerificationError(UNSUPPORTED_FORMAT, _LAYOUT_MESSAGE)
        return "intoto-link" if body is not None and is_link_payload(body) else "dsse"
    if "signed" in document and "signatures" in document:
        signed = document["signed"]
        kind = signed.get("_type") if isinstance(signed, dict) else None
        if kind == "link":
            return "intoto-link"
        if kind == "layout":
            raise VerificationError(UNSUPPORTED_FORMAT, _LAYOUT_MESSAGE)
        raise VerificationError(
            UNSUPPORTED_FORMAT, f"signed metadata of _type {kind!r}; expected an in-toto link"
        )
    if document.get("_type") in STATEMENT_TYPES or "predicateType" in document:
        raise VerificationError(
            UNSUPPORTED_FORMAT,
            "an unsigned in-toto Statement: sign it first (cosign attest, "
            "GitHub attest-build-provenance, or a DSSE envelope with your key)",
        )
    if isinstance(document.get("attestations"), list):
        raise VerificationError(
            UNSUPPORTED_FORMAT,
            "an npm attestations document: upload each attestations[].bundle, or all of "
            "them as .intoto.jsonl",
        )
    keys = ", ".join(sorted(document)[:8]) or "none"
    raise VerificationError(
        UNSUPPORTED_FORMAT, f"JSON object with keys [{keys}] is not {_EXPECTED}"
    )


def split_jsonl(data: bytes) -> list[bytes]:
    """The documents of a .intoto.jsonl upload, one per non-blank line (not yet parsed);
    ``too_many_lines`` past the limit, before any line is parsed."""
    documents = [stripped for line in data.splitlines() if (stripped := line.strip())]
    if not documents:
        raise VerificationError(MALFORMED, "the .intoto.jsonl upload holds no documents")
    most = limits.current().max_jsonl_lines
    if len(documents) > most:
        raise VerificationError(
            TOO_MANY_LINES,
            f"the .intoto.jsonl upload holds {len(documents)} documents; the limit is {most} "
            "(PROVENANT_MAX_JSONL_LINES): split it into several uploads",
            {"limit": "PROVENANT_MAX_JSONL_LINES", "max": most},
        )
    return documents


def _text(data: bytes) -> str:
    if not data.strip():
        raise VerificationError(MALFORMED, f"empty upload; expected {_EXPECTED}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise VerificationError(
            MALFORMED,
            "binary data, not JSON: upload the attestation or signature bundle, not the "
            f"artifact itself; expected {_EXPECTED}",
        ) from exc


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _looks_like_jsonl(text: str) -> bool:
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 2:
        return False
    try:
        return isinstance(strict_json.loads(lines[0]), dict)
    except VerificationError:
        return False


def _peek_payload(payload: object) -> dict[str, Any] | None:
    """The decoded DSSE payload when it is base64 JSON; None leaves errors to verification."""
    try:
        body = strict_json.loads(b64decode(payload, "DSSE payload"), "the DSSE payload")
    except VerificationError:
        return None
    return body if isinstance(body, dict) else None
