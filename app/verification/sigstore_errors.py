"""Turn sigstore-python's exceptions into our error codes, and pick the error worth reporting.

sigstore-python raises a handful of exception types whose message says what failed; the
patterns below come from reading sigstore 4.5 (verify/verifier.py, models.py, _internal/*).
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature

from app.verification import errors as E
from app.verification.errors import VerificationError

# (substring of the library's message, code); first match wins. The library prefixes what it
# wraps ("invalid log entry: ...", "failed to verify SCT ..."), and wrapped text may quote
# arbitrary bytes, so those prefixes come before any looser pattern.
_MESSAGE_CODES: tuple[tuple[str, str], ...] = (
    ("failed to load bundle", E.MALFORMED),
    # pydantic failing on a log entry body (bundles are parsed before verification starts)
    ("validation error", E.TLOG_ENTRY_MISMATCH),
    ("invalid log entry", E.TLOG_PROOF_INVALID),
    ("failed to verify sct", E.SCT_INVALID),
    ("not valid at validation time", E.CERTIFICATE_EXPIRED),
    ("failed to build timestamp certificate chain", E.CERTIFICATE_CHAIN_INVALID),
    ("expired at time of signing", E.CERTIFICATE_EXPIRED),
    ("key usage is not", E.CERTIFICATE_CHAIN_INVALID),
    ("extended usage does not", E.CERTIFICATE_CHAIN_INVALID),
    ("too many signed timestamp", E.TIMESTAMP_INVALID),
    ("duplicate timestamp", E.TIMESTAMP_INVALID),
    ("no timestamp authorities", E.TIMESTAMP_INVALID),
    ("invalid timestamp response", E.TIMESTAMP_INVALID),
    ("sources of verified time", E.TIMESTAMP_INVALID),
    ("inclusion promise or signed", E.TIMESTAMP_INVALID),
    ("integrated time only supported", E.UNSUPPORTED_FORMAT),
    ("inconsistent with other materials", E.TLOG_ENTRY_MISMATCH),
    ("log entry payload hash", E.TLOG_ENTRY_MISMATCH),
    ("log entry signatures do not match", E.TLOG_ENTRY_MISMATCH),
    ("invalid dsse log entry", E.TLOG_ENTRY_MISMATCH),
    ("missing message signature", E.TLOG_ENTRY_MISMATCH),
    ("unsupported dsse log entry type", E.UNSUPPORTED_FORMAT),
    ("expected entry type", E.UNSUPPORTED_FORMAT),
    ("unsupported hashedrekord version", E.UNSUPPORTED_FORMAT),
    ("expected log entry version", E.UNSUPPORTED_FORMAT),
    ("unsupported bundle format", E.UNSUPPORTED_FORMAT),
    ("message digest mismatch", E.SUBJECT_MISMATCH),
    ("inclusion proof", E.TLOG_PROOF_INVALID),
    ("inclusion promise", E.TLOG_PROOF_INVALID),
    ("exactly one log entry", E.TLOG_PROOF_INVALID),
    ("signature", E.SIGNATURE_INVALID),
    ("certificate", E.MALFORMED),
)

# How far verification got before failing. When every trust root fails, the error from the
# root that got furthest is the one that describes the bundle (the others merely say
# "not my bundle").
_STAGE: dict[str, int] = {
    E.MALFORMED: 0,
    E.UNSUPPORTED_FORMAT: 0,
    E.UNTRUSTED_ROOT: 0,
    E.UNTRUSTED_KEY: 0,
    E.TIMESTAMP_INVALID: 1,
    E.CERTIFICATE_CHAIN_INVALID: 2,
    E.CERTIFICATE_EXPIRED: 3,
    E.SCT_INVALID: 4,
    E.TLOG_PROOF_INVALID: 5,
    E.SIGNATURE_INVALID: 6,
    E.TLOG_ENTRY_MISMATCH: 7,
    E.SUBJECT_MISMATCH: 7,
}


def code_for_message(message: str) -> str:
    lowered = message.lower()
    for needle, code in _MESSAGE_CODES:
        if needle in lowered:
            return code
    # Whatever else the library refuses after parsing is a verification failure of the
    # signed material; the message says which.
    return E.SIGNATURE_INVALID


def translate(exc: Exception) -> VerificationError:
    """A VerificationError for anything sigstore-python (or cryptography) raised."""
    if isinstance(exc, VerificationError):
        return exc
    if isinstance(exc, InvalidSignature):
        return VerificationError(E.SIGNATURE_INVALID, "invalid signature")
    message = str(exc) or type(exc).__name__
    return VerificationError(code_for_message(message), message)


class RootFailures:
    """Failures per trust root, to report the one that best explains the rejection."""

    def __init__(self) -> None:
        self.failures: list[tuple[bool, str, VerificationError]] = []

    def add(self, root_name: str, error: VerificationError, *, relevant: bool) -> None:
        """``relevant``: the root holds this bundle's issuer or log, so its verdict counts."""
        self.failures.append((relevant, root_name, error))

    def best(self) -> VerificationError:
        if not self.failures:
            return VerificationError(E.UNTRUSTED_ROOT, "no Sigstore trust root is configured")
        # max() keeps the first of equals, i.e. the earliest root in try order.
        relevant, name, error = max(self.failures, key=lambda f: (f[0], _STAGE.get(f[2].code, 0)))
        if not relevant and error.code in (E.CERTIFICATE_CHAIN_INVALID, E.TLOG_PROOF_INVALID):
            return VerificationError(
                E.UNTRUSTED_ROOT,
                "signed with a certificate authority or transparency log that no configured "
                f"trust root holds (closest: {name}: {error.message})",
            )
        return VerificationError(error.code, f"{error.message} (trust root {name})")
