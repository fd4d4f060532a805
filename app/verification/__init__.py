"""Verification core: what a signed upload proves, free of FastAPI and the database.

Bundle verification (``sigstore_bundles``) is reached through ``verify_document`` and imported
lazily, so importing this package does not load sigstore-python.
"""

from app.verification.dsse import verify_dsse_envelope
from app.verification.errors import VerificationError
from app.verification.facts import (
    DocumentFormat,
    SignerFacts,
    Subject,
    TlogFacts,
    VerifiedDocument,
)
from app.verification.formats import classify, detect_format, split_jsonl
from app.verification.keyring import KeyLoadError, TrustedKey, load_keys
from app.verification.links import verify_link
from app.verification.statement import ParsedStatement, parse_statement, slsa_facts
from app.verification.trust import TrustStore
from app.verification.verify import verify_document, verify_parsed

__all__ = [
    "DocumentFormat",
    "KeyLoadError",
    "ParsedStatement",
    "SignerFacts",
    "Subject",
    "TlogFacts",
    "TrustStore",
    "TrustedKey",
    "VerificationError",
    "VerifiedDocument",
    "classify",
    "detect_format",
    "load_keys",
    "parse_statement",
    "slsa_facts",
    "split_jsonl",
    "verify_document",
    "verify_dsse_envelope",
    "verify_link",
    "verify_parsed",
]
