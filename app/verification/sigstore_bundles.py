"""Verify a Sigstore bundle (media types v0.1 to v0.3) offline and return what it proves.

Keyless bundles go through sigstore-python's ``Verifier`` against each trust root in turn;
the entry kinds and bundle shapes it refuses but real CI produces, and key-signed bundles,
go through the checks in ``sigstore_keyless.verify_legacy`` and ``sigstore_keys``. The
signer's identity is recorded, not judged: policy does that at decision time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sigstore.hashes import Hashed
from sigstore.models import Bundle

from app.verification import errors as E
from app.verification.errors import VerificationError
from app.verification.facts import SignerFacts, TlogFacts, VerifiedDocument
from app.verification.fulcio import signer_facts_from_certificate
from app.verification.legacy_tlog import EntryVerdict
from app.verification.sigstore_errors import RootFailures
from app.verification.sigstore_keyless import (
    LIBRARY_ENTRY_KINDS,
    issuer_in_root,
    verify_legacy,
    verify_with_library,
)
from app.verification.sigstore_keys import verify_key_bundle
from app.verification.sigstore_model import (
    V01,
    ParsedBundle,
    load_library_bundle,
    load_unchecked_bundle,
    parse_document,
    sha256_hashed,
)
from app.verification.sigstore_statement import bundle_statement, require_subject_digest
from app.verification.trust import TrustStore

__all__ = ["verify_bundle"]


def _tlog_facts(bundle: Bundle, verdict: EntryVerdict) -> TlogFacts:
    inner = bundle.log_entry._inner
    return TlogFacts(
        log_id=inner.log_id.key_id.hex(),
        log_index=inner.log_index,
        integrated_time=verdict.integrated_time,
        kind=inner.kind_version.kind,
        kind_version=inner.kind_version.version,
        inclusion=verdict.inclusion,
    )


def _verify_keyless(
    parsed: ParsedBundle, trust: TrustStore, hashed: Hashed | None
) -> tuple[Bundle, list[str], EntryVerdict, list[datetime]]:
    """The bundle, every root that verifies it (the first one's verdict and times)."""
    # A v0.1 bundle need only carry an inclusion promise; sigstore-python's loader wants a
    # checkpointed proof regardless, so those are loaded without its client policy.
    promise_only = parsed.media_type == V01 and not parsed.checkpointed
    bundle = load_unchecked_bundle(parsed) if promise_only else load_library_bundle(parsed)
    use_library = not promise_only and (parsed.kind, parsed.kind_version) in LIBRARY_ENTRY_KINDS
    failures = RootFailures()
    # Roots holding the issuing CA go first: every other root is a wasted verification.
    roots = sorted(
        trust.roots.items(),
        key=lambda item: not issuer_in_root(bundle.signing_certificate, item[1]),
    )
    verified: list[str] = []
    first: tuple[EntryVerdict, list[datetime]] | None = None
    for name, root in roots:
        relevant = issuer_in_root(bundle.signing_certificate, root)
        if first is not None and not relevant:
            # Found already: only a root with the same CA can also verify it (a custom root
            # sharing Fulcio with a built-in one); the rest would be wasted verifications.
            break
        try:
            if use_library:
                outcome = verify_with_library(bundle, root, hashed)
            else:
                outcome = verify_legacy(bundle, root, hashed)
        except VerificationError as exc:
            failures.add(name, exc, relevant=relevant)
            continue
        verified.append(name)
        if first is None:
            first = (outcome.entry, outcome.times)
    if first is None:
        raise failures.best()
    return bundle, verified, *first


def verify_bundle(
    bundle: dict[str, Any] | bytes,
    trust: TrustStore,
    *,
    message_digest: tuple[str, str] | None = None,
) -> VerifiedDocument:
    """Verify ``bundle`` against ``trust``; raise VerificationError with the most specific code.

    ``message_digest`` (algorithm, hex) names the artifact: required for message-signature
    bundles (the signature is over it), and for DSSE bundles it must be one of the subjects.
    """
    parsed = parse_document(bundle)
    if parsed.media_type != V01 and not parsed.checkpointed:
        # Only v0.1 bundles may rely on an inclusion promise alone (bundle spec).
        raise VerificationError(
            E.TLOG_PROOF_INVALID, "entry must contain an inclusion proof with a checkpoint"
        )
    is_dsse = "dsseEnvelope" in parsed.doc
    if not is_dsse and message_digest is None:
        raise VerificationError(
            E.SUBJECT_MISSING,
            "a message signature bundle names no artifact: give its digest (`provenant upload "
            "--subject-digest sha256:<hex> --subject-name NAME`, or ?subject_digest=sha256:<hex>"
            "&subject_name=NAME on the upload URL)",
        )
    hashed = sha256_hashed(message_digest) if message_digest and not is_dsse else None

    signer: SignerFacts
    if parsed.key_signed:
        loaded = load_unchecked_bundle(parsed)
        outcome = verify_key_bundle(loaded, trust, hashed)
        root_name, verdict, times = outcome.root_name, outcome.entry, outcome.times
        root_names = [root_name] if root_name else []
        signer = SignerFacts(
            kind="key",
            key_id=outcome.key.key_id,
            key_algorithm=outcome.key.algorithm,
            public_key_pem=outcome.key.public_key_pem,
        )
    else:
        loaded, root_names, verdict, times = _verify_keyless(parsed, trust, hashed)
        root_name = root_names[0]
        signer = signer_facts_from_certificate(loaded.signing_certificate)

    common: dict[str, Any] = {
        "format": "sigstore-bundle",
        "media_type": parsed.media_type,
        "signers": [signer],
        "trust_root": root_name,
        "trust_roots": root_names,
        "tlog": [_tlog_facts(loaded, verdict)],
        "timestamps": sorted(times),
    }
    envelope = loaded._inner.dsse_envelope
    if envelope is None:
        assert message_digest is not None  # required above for message signatures
        algorithm, value = message_digest
        return VerifiedDocument(
            **common,
            content_kind="message-signature",
            message_digest=(algorithm.lower(), value.lower()),
        )
    statement = bundle_statement(envelope.payload_type, envelope.payload)
    if message_digest is not None:
        require_subject_digest(statement.subjects, message_digest)
    return VerifiedDocument(
        **common,
        content_kind="statement",
        statement=statement.statement,
        predicate_type=statement.predicate_type,
        subjects=statement.subjects,
    )
