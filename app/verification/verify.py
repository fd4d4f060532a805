"""One entry point for a single uploaded document: detect its format, verify it.

.intoto.jsonl uploads are split by the ingest layer (``formats.split_jsonl``) and each line
comes back here, so one bad line can be reported with its line number.
"""

from __future__ import annotations

from typing import Any

from app.verification.dsse import verify_dsse_envelope
from app.verification.errors import UNSUPPORTED_FORMAT, VerificationError
from app.verification.facts import VerifiedDocument
from app.verification.formats import sniff
from app.verification.links import verify_link
from app.verification.trust import TrustStore


def verify_document(
    data: bytes,
    trust: TrustStore,
    *,
    content_type: str | None = None,
    message_digest: tuple[str, str] | None = None,
) -> VerifiedDocument:
    """Verify one Sigstore bundle, DSSE envelope or in-toto link.

    ``message_digest`` (algorithm, hex) is the artifact digest the uploader says a
    message-signature bundle signs; it means nothing for DSSE envelopes and links, which
    name their subjects themselves, and is ignored for them.

    Raises VerificationError with a stable code (see ``errors``).
    """
    detected = sniff(data, content_type)
    if detected.format == "jsonl" or detected.document is None:
        raise VerificationError(
            UNSUPPORTED_FORMAT,
            "a .intoto.jsonl upload holds several documents: split it (split_jsonl) and "
            "verify each line",
        )
    return verify_parsed(detected.format, detected.document, trust, message_digest)


def verify_parsed(
    fmt: str,
    document: dict[str, Any],
    trust: TrustStore,
    message_digest: tuple[str, str] | None = None,
) -> VerifiedDocument:
    """Verify an already parsed document of a known format (see ``formats.classify``)."""
    if fmt == "sigstore-bundle":
        # Imported here: the bundle module pulls in sigstore-python, which DSSE-with-keys
        # and link verification do not need.
        from app.verification.sigstore_bundles import verify_bundle

        return verify_bundle(document, trust, message_digest=message_digest)
    if fmt == "dsse":
        return verify_dsse_envelope(document, trust)
    if fmt == "intoto-link":
        return verify_link(document, trust)
    raise VerificationError(UNSUPPORTED_FORMAT, f"cannot verify format {fmt!r}")
