"""Verification failures, each with a stable machine-readable code.

The code is what the API returns (422 ``{"error": {"code": ...}}``) and what the audit log
records, so CI authors can branch on it; the message is for humans.
"""

from __future__ import annotations

# Codes are part of the public API: add, never rename.
SIGNATURE_INVALID = "signature_invalid"
CERTIFICATE_CHAIN_INVALID = "certificate_chain_invalid"
CERTIFICATE_EXPIRED = "certificate_expired"
SCT_INVALID = "sct_invalid"
TLOG_PROOF_INVALID = "tlog_proof_invalid"
TLOG_ENTRY_MISMATCH = "tlog_entry_mismatch"
TIMESTAMP_INVALID = "timestamp_invalid"
UNTRUSTED_KEY = "untrusted_key"
UNTRUSTED_ROOT = "untrusted_root"
# A certificate-signed (keyless) DSSE envelope uploaded without its transparency-log entry:
# nothing proves the certificate was valid when it signed. The fix is to upload the bundle.
TLOG_EVIDENCE_MISSING = "tlog_evidence_missing"
UNSUPPORTED_FORMAT = "unsupported_format"
SUBJECT_MISSING = "subject_missing"
SUBJECT_MISMATCH = "subject_mismatch"
STATEMENT_INVALID = "statement_invalid"
MALFORMED = "malformed"
UNVERIFIABLE = "unverifiable"  # the verifier itself failed on this input: rejected, fail closed
# Input limits (app/verification/limits.py): details name the setting and its value.
JSON_TOO_DEEP = "json_too_deep"
INTEGER_TOO_LONG = "integer_too_long"
TOO_MANY_SIGNATURES = "too_many_signatures"
TOO_MANY_LINES = "too_many_lines"
# JSON that reads two ways (a repeated key) or holds text no database stores (NUL, a lone
# surrogate): refused wherever its bytes are signed or stored.
DUPLICATE_KEY = "duplicate_key"
UNREPRESENTABLE_TEXT = "unrepresentable_text"


class VerificationError(Exception):
    """A document failed verification (or could not be parsed as a signed document)."""

    def __init__(self, code: str, message: str, details: object | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details

    def __repr__(self) -> str:
        return f"VerificationError({self.code!r}, {self.message!r})"

    def __reduce__(self) -> tuple[object, ...]:
        # Ingest workers send it back to the server process (app/attestations/workers.py).
        return (type(self), (self.code, self.message, self.details))
