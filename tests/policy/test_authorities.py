"""Keyless identities (issuer, SAN, claims, trust root) and keys (by SubjectPublicKeyInfo)."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from app.policy.authorities import (
    EvidenceRules,
    Identity,
    KeyAuthority,
    KeylessAuthority,
    load_public_keys,
    signer_identity,
)
from app.verification.facts import SignerFacts
from tests.policy.helpers import GITHUB, RELEASE_SAN, Key, keyless, stored


def acme(**kwargs: object) -> KeylessAuthority:
    identity = Identity(GITHUB, None, None, re.compile(r"https://github\.com/acme/.+"))
    return KeylessAuthority("acme-ci", "public-good", (identity,), **kwargs)  # type: ignore[arg-type]


def test_keyless_identity_matches() -> None:
    signer = keyless()
    assert acme().mismatch(stored(signer), signer) is None


def test_subject_regexp_is_anchored() -> None:
    identity = Identity(GITHUB, None, None, re.compile(r"github\.com/acme/"))
    authority = KeylessAuthority("a", "public-good", (identity,))
    signer = keyless(san=RELEASE_SAN)
    reason = authority.mismatch(stored(signer), signer)
    assert reason is not None
    assert "subject matching github\\.com/acme/" in reason
    assert RELEASE_SAN in reason


def test_issuer_must_match() -> None:
    signer = keyless(issuer="https://accounts.google.com")
    reason = acme().mismatch(stored(signer), signer)
    assert reason is not None and "found issuer https://accounts.google.com" in reason


def test_trust_root_must_equal_the_attestations() -> None:
    signer = keyless()
    reason = acme().mismatch(stored(signer, trust_root="staging"), signer)
    assert reason == (
        "acme-ci expects trust root public-good, the attestation was verified by staging"
    )


def test_claims_match_fulcio_extensions_by_name() -> None:
    authority = acme(claims=(("sourceRepositoryURI", "https://github.com/acme/app"),))
    good = keyless()
    assert authority.mismatch(stored(good), good) is None
    bad = keyless(sourceRepositoryURI="https://github.com/acme/fork")
    reason = authority.mismatch(stored(bad), bad)
    assert reason is not None
    assert "expects claim sourceRepositoryURI 'https://github.com/acme/app'" in reason
    assert "found 'https://github.com/acme/fork'" in reason


def test_missing_claim_is_reported_as_missing() -> None:
    authority = acme(claims=(("runnerEnvironment", "github-hosted"),))
    signer = keyless()
    reason = authority.mismatch(stored(signer), signer)
    assert reason is not None and "no such certificate extension" in reason


def test_claims_regexp() -> None:
    authority = acme(claims_regexp=(("sourceRepositoryRef", re.compile(r"refs/tags/v.*")),))
    tagged = keyless(sourceRepositoryRef="refs/tags/v1")
    branch = keyless(sourceRepositoryRef="refs/heads/main")
    assert authority.mismatch(stored(tagged), tagged) is None
    assert authority.mismatch(stored(branch), branch) is not None


def test_keyless_authority_rejects_key_signers() -> None:
    signer = Key().signer()
    reason = acme().mismatch(stored(signer), signer)
    assert reason is not None and "expects a keyless signer, found key sha256:" in reason


def test_key_authority_matches_on_spki_whatever_the_pem_spelling() -> None:
    key = Key()
    authority = KeyAuthority("release", load_public_keys(key.pem.encode(), "inline"), "inline")
    # Same key, other PEM wrapping and line endings: still the same SubjectPublicKeyInfo.
    body = "".join(key.pem.splitlines()[1:-1])
    rewrapped = "-----BEGIN PUBLIC KEY-----\r\n" + body + "\r\n-----END PUBLIC KEY-----\r\n"
    signer = SignerFacts(kind="key", key_id="whatever", public_key_pem=rewrapped)
    # Key-signed Sigstore bundles (with a trust root) and bare DSSE envelopes (without).
    for fmt, root in (("sigstore-bundle", "public-good"), ("dsse", None)):
        attestation = replace(stored(signer, trust_root=root), format=fmt)
        assert authority.mismatch(attestation, signer) is None


def test_key_authority_rejects_other_keys_and_keyless() -> None:
    key, other = Key(), Key()
    authority = KeyAuthority("release", load_public_keys(key.pem.encode(), "k.pub"), "k.pub")
    wrong = other.signer()
    reason = authority.mismatch(stored(wrong), wrong)
    assert reason is not None and reason.startswith("release expects key sha256:")
    assert "(k.pub), found key sha256:" in reason
    ci = keyless()
    assert "found keyless signer" in (authority.mismatch(stored(ci), ci) or "")


@pytest.mark.parametrize(
    ("pem", "problem"),
    [
        (b"-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n", "private key"),
        (b"-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n", "certificate"),
        (b"not a key", "no PEM public key"),
        (b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "not a usable"),
    ],
)
def test_bad_key_material_is_refused(pem: bytes, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        load_public_keys(pem, "keys/x.pub")


def test_signer_identity_distinguishes_signers_not_certificates() -> None:
    assert signer_identity(keyless()) == signer_identity(keyless(extra="x"))
    assert signer_identity(keyless()) != signer_identity(keyless(san="https://other"))
    key = Key()
    assert signer_identity(key.signer()) == signer_identity(key.signer())
    assert signer_identity(key.signer()) != signer_identity(Key().signer())


# -- transparency evidence an authority may demand beyond ingest's ------------------------------

V01 = "application/vnd.dev.sigstore.bundle+json;version=0.1"
V03 = "application/vnd.dev.sigstore.bundle.v0.3+json"


def evidence(media_type: str, inclusions: tuple[str, ...], times: int) -> object:
    signer = keyless()
    return replace(
        stored(signer), media_type=media_type, tlog_inclusions=inclusions, verified_times=times
    ), signer


def test_evidence_defaults_accept_what_ingest_accepted() -> None:
    attestation, signer = evidence(V01, ("promise",), 1)
    assert acme().mismatch(attestation, signer) is None


def test_require_inclusion_proof_refuses_a_promise_only_entry() -> None:
    rules = EvidenceRules(require_inclusion_proof=True)
    attestation, signer = evidence(V01, ("promise",), 1)
    assert "requireInclusionProof" in acme(evidence=rules).mismatch(attestation, signer)
    attestation, signer = evidence(V03, ("proof",), 1)
    assert acme(evidence=rules).mismatch(attestation, signer) is None


def test_min_bundle_version_reads_both_media_type_spellings() -> None:
    rules = EvidenceRules(min_bundle_version=(0, 2))
    attestation, signer = evidence(V01, ("proof",), 1)
    assert "found 0.1" in acme(evidence=rules).mismatch(attestation, signer)
    attestation, signer = evidence(V03, ("proof",), 1)
    assert acme(evidence=rules).mismatch(attestation, signer) is None


def test_verified_timestamps_counts_log_and_tsa_times() -> None:
    rules = EvidenceRules(verified_timestamps=2)
    attestation, signer = evidence(V03, ("proof",), 1)
    assert "found 1" in acme(evidence=rules).mismatch(attestation, signer)
    attestation, signer = evidence(V03, ("proof",), 2)
    assert acme(evidence=rules).mismatch(attestation, signer) is None


def test_any_recorded_trust_root_satisfies_the_authority() -> None:
    signer = keyless()
    shared = replace(stored(signer), trust_roots=("public-good", "mirror"))
    mirror = KeylessAuthority("m", "mirror", acme().identities)
    assert mirror.mismatch(shared, signer) is None
    assert "verified by public-good" in mirror.mismatch(stored(signer), signer)
