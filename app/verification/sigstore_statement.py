"""The in-toto Statement inside a verified bundle's DSSE envelope.

Parsing and validation are the shared ``statement`` module's; this adds what is particular to
bundles: the payload type, and the uploader's artifact digest when one was given.
"""

from __future__ import annotations

from app.verification import errors as E
from app.verification.errors import VerificationError
from app.verification.facts import Subject
from app.verification.statement import ParsedStatement, parse_statement

INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"


def bundle_statement(payload_type: str, payload: bytes) -> ParsedStatement:
    if payload_type != INTOTO_PAYLOAD_TYPE:
        raise VerificationError(
            E.UNSUPPORTED_FORMAT, f"DSSE payload type {payload_type!r} is not an in-toto statement"
        )
    return parse_statement(payload)


def require_subject_digest(subjects: list[Subject], digest: tuple[str, str]) -> None:
    """The uploader named an artifact: the statement must be about it."""
    algorithm, value = digest[0].lower(), digest[1].lower()
    if not any(s.digests.get(algorithm) == value for s in subjects):
        raise VerificationError(
            E.SUBJECT_MISMATCH, f"no statement subject has digest {algorithm}:{value}"
        )
