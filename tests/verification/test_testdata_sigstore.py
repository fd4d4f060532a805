"""Every Sigstore-bundle case of ../shared/testdata/manifest.json against verify_bundle.

The manifest states each upstream suite's outcome. Ours differs on purpose in two ways, and
each such case says why: identity, builder, source and tag checks are policy here (judged at
decision time from the stored facts), so only what signature verification alone must give is
asserted; and a few bundles sigstore-python refuses are spec-valid and verify here.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from sigstore.verify import verifier as library_verifier

from app.verification.errors import VerificationError
from app.verification.facts import VerifiedDocument
from app.verification.keyring import TrustedKey, spki_key_id
from app.verification.sigstore_bundles import verify_bundle
from app.verification.trust import TrustStore
from app.verification.trust_roots import (
    builtin_root_path,
    load_trusted_root_file,
    parse_trusted_root,
)

TESTDATA = Path(__file__).parents[2].parent / "shared" / "testdata"
if not (TESTDATA / "manifest.json").is_file():
    pytest.skip(f"{TESTDATA} is absent", allow_module_level=True)

# sigstore-go's scaffolding CA has a 3-letter country name, which cryptography warns about
# when sigstore-python formats the subject for a debug log line.
pytestmark = pytest.mark.filterwarnings("ignore:Attribute's length must be:UserWarning")

MANIFEST: dict[str, Any] = json.loads((TESTDATA / "manifest.json").read_text())
KINDS = {
    "sigstore-bundle-artifact",
    "sigstore-bundle-dsse",
    "sigstore-bundle-managed-key",
    "github-attestation-bundle",
    "npm-attestations",
    "slsa-provenance",
    "vsa",
}
BUILTIN_ALIASES = {
    "sigstore-production-embedded": "public-good",
    "sigstore-staging-embedded": "staging",
}
# npm's registry key, as the npm publish attestations' Rekor entries record it; npm calls it
# by this id (not a hash we could compute), which is what the bundles' hint says.
NPM_KEY_FILE = "sigstore-go/examples/publish_key.pub"
NPM_KEY_ID = "SHA256:jl3bwswu80PjjokCgh0o2w5c2U4LhQAE57gj9cz1kzA"
NPM_PUBLISH_PREDICATE = "https://github.com/npm/attestation/tree/main/specs/publish/v0.1"

# sigstore-python test/assets/tsa/ca.json (Apache-2.0, sigstore/sigstore-python), the test TSA
# chain the manifest substitutes into the staging root; the testdata copy does not ship it.
TSA_CA_JSON = {
    "certChain": {
        "certificates": [
            {
                "rawBytes": "MIIBzDCCAXKgAwIBAgIULk1PjItZiOSoI+mHqdkSfcRIYS0wCgYIKoZIzj0EAwIwMDEOMAwGA1UEChMFbG9jYWwxHjAcBgNVBAMTFVRlc3QgVFNBIEludGVybWVkaWF0ZTAeFw0yNDEwMzExMDE2NDJaFw0zMzEwMzExMDE5NDJaMDAxDjAMBgNVBAoTBWxvY2FsMR4wHAYDVQQDExVUZXN0IFRTQSBUaW1lc3RhbXBpbmcwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAARbAXMyQHIMuZtXY1bXlIWCKDPKts1j1JHB9n0j8teSYKs6ju9Z+v0joTcaiD0F0R+YEh6xWB9+71jkg57qsJqCo2owaDAOBgNVHQ8BAf8EBAMCB4AwHQYDVR0OBBYEFHr84ZbK4DrUPCzsEQbBjdT5OnRBMB8GA1UdIwQYMBaAFCkN6IAfJdG+HSOn1pSw9FnTuO1RMBYGA1UdJQEB/wQMMAoGCCsGAQUFBwMIMAoGCCqGSM49BAMCA0gAMEUCIAha0d6Cgx9r/S1itcwzCCLpj6Oddp7XHyQ6c9iskT4GAiEA7HrjYsLE4XjdsUA6OgsoO7h5IzkbsVEYUAnKEFchoKY="  # noqa: E501
            },
            {
                "rawBytes": "MIIB0zCCAXigAwIBAgIUGnqrcxtrSpsILclUa/+bCnYeZOUwCgYIKoZIzj0EAwIwKDEOMAwGA1UEChMFbG9jYWwxFjAUBgNVBAMTDVRlc3QgVFNBIFJvb3QwHhcNMjQxMDMxMTAxNDQyWhcNMzQxMDMxMTAxOTQyWjAwMQ4wDAYDVQQKEwVsb2NhbDEeMBwGA1UEAxMVVGVzdCBUU0EgSW50ZXJtZWRpYXRlMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE2apBvcj3qtsHACafJaOd5Zw874AKK2s5XXdd6jrlVF9h3S6JFgUZ/5MVpYWDNKjgrkqbvhU3RroOGXJ4DyPGSaN4MHYwDgYDVR0PAQH/BAQDAgEGMBMGA1UdJQQMMAoGCCsGAQUFBwMIMA8GA1UdEwEB/wQFMAMBAf8wHQYDVR0OBBYEFCkN6IAfJdG+HSOn1pSw9FnTuO1RMB8GA1UdIwQYMBaAFO0kKGzBCz7EddTsYBcuwp1VgbhxMAoGCCqGSM49BAMCA0kAMEYCIQDQutW0fTsKlGN4CohrIi/5fMIOqXpjxXswhxiBfCUa/AIhAOe4rlnAGQlmYlBW1uDqt0lw3a/2oAGvHRhDKbiIMPqo"  # noqa: E501
            },
            {
                "rawBytes": "MIIBkzCCATqgAwIBAgIUfHAOxJRvpMlmRi3vt7yebkXSb9IwCgYIKoZIzj0EAwIwKDEOMAwGA1UEChMFbG9jYWwxFjAUBgNVBAMTDVRlc3QgVFNBIFJvb3QwHhcNMjQxMDMxMTAxNDQyWhcNMzQxMDMxMTAxOTQyWjAoMQ4wDAYDVQQKEwVsb2NhbDEWMBQGA1UEAxMNVGVzdCBUU0EgUm9vdDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABDQ2pO3oB5x2HKXp1YpgHB7SCVD1pag46/QUGfQHpyYWOdO4q7uqSx19f2StEszzqrZvpRioo1j6Lwnpp6oQ4P+jQjBAMA4GA1UdDwEB/wQEAwIBBjAPBgNVHRMBAf8EBTADAQH/MB0GA1UdDgQWBBTtJChswQs+xHXU7GAXLsKdVYG4cTAKBggqhkjOPQQDAgNHADBEAiAFbrVtlmebUMEzUL6JijgYrZhkjUR9VvNO+J2rbQ2eeAIgHUf+TJCnYoq3In8hUlH4D92Fc3Xad6lI0mLfYWm5wpk="  # noqa: E501
            },
        ]
    }
}

# Upstream failures that are ours too, with the code we must give.
EXPECTED_ERRORS: dict[str, str] = {
    "sigstore-python/bundle_cve_2022_36056.txt": "tlog_entry_mismatch",
    "sigstore-python/bundle_invalid_version.txt": "unsupported_format",
    "sigstore-python/bundle_no_cert_v1.txt": "malformed",
    "sigstore-python/bundle_no_log_entry.txt": "tlog_proof_invalid",
    # v0.2+ bundles must carry a checkpointed inclusion proof (bundle spec), unlike v0.1.
    "sigstore-python/bundle_no_checkpoint.txt": "tlog_proof_invalid",
    "sigstore-python/bundle_v3_no_signed_time.txt": "timestamp_invalid",
    "sigstore-python/tsa/bundle.many_timestamp": "timestamp_invalid",
    "sigstore-python/tsa/bundle.duplicate": "timestamp_invalid",
    "sigstore-python/tsa/bundle.txt.late_timestamp": "timestamp_invalid",
    "sigstore-python/tsa/bundle.txt-no-tsa-in-root": "timestamp_invalid",
    "sigstore-go/dsse-2sigs": "signature_invalid",
    "sigstore-go/sigstore.js@2.0.0-provenance+bad-digest": "subject_mismatch",
    # Upstream rejects the signing time against the key's validity window; the bundle also has
    # no transparency log entry, which we require of every bundle before any policy runs.
    "sigstore-go/public-key-validity": "tlog_proof_invalid",
    "gh-cli/sigstoreBundle-invalid-signature": "signature_invalid",
    "gh-cli/missing-verification-material": "malformed",
    "gh-cli/missing-cert": "malformed",
}

# Upstream failures that are policy here: the signature verifies, the facts decide later.
POLICY_FAILURES: dict[str, str] = {
    "sigstore-python/bundle.txt-wrong-identity": "identity (SAN) policy",
    "sigstore-go/sigstore.js@2.0.0-provenance+bad-san": "identity (SAN) policy",
    "sigstore-go/othername+email-san": "identity (SAN) policy",
    "gh-cli/sigstore-js-2.1.0/invalid-repo": "source repository policy",
    "gh-cli/sigstore-js-2.1.0/invalid-owner": "source repository owner policy",
    "gh-cli/reusable-workflow/invalid-signer-workflow": "signer workflow (SAN) policy",
    "gh-cli/sigstore-js-2.1.0-bundle-v0.1": (
        "gh CLI client policy refuses bundles older than v0.2; the v0.1 bundle is valid"
    ),
    "slsa-verifier/github-attestation/bcr/module.bazel wrong signer": "builder policy",
    "slsa-verifier/github-attestation/bcr/module.bazel no builder id": "builder policy",
    "slsa-verifier/github-attestation/bcr/source archive no builder id": "builder policy",
}

# Where we knowingly disagree with upstream, and why.
DEVIATIONS: dict[str, str] = {
    "sigstore-python/integration/Python-3.12.5.tgz": (
        "a v0.1 bundle needs only an inclusion promise (bundle spec); sigstore-python refuses "
        "to load it for lacking a checkpoint, upstream's own fix-bundle shows it is genuine"
    ),
}

# The identity-policy failures whose facts must contradict the expected identity.
IDENTITY_MISMATCHES = {
    "sigstore-python/bundle.txt-wrong-identity",
    "sigstore-go/sigstore.js@2.0.0-provenance+bad-san",
    "sigstore-go/othername+email-san",
    "gh-cli/sigstore-js-2.1.0/invalid-repo",
    "gh-cli/sigstore-js-2.1.0/invalid-owner",
    "gh-cli/reusable-workflow/invalid-signer-workflow",
}

# sigstore-python's policy names for Fulcio extensions -> ours.
EXTENSION_POLICY_NAMES = {
    "GitHubWorkflowRepository": "githubWorkflowRepository",
    "GitHubWorkflowRef": "githubWorkflowRef",
    "GitHubWorkflowSHA": "githubWorkflowSha",
    "OIDCSourceRepositoryURI": "sourceRepositoryURI",
}


@dataclass(frozen=True)
class Plan:
    skip: str | None  # reason, when the case cannot be decided by verify_bundle offline
    error: str | None  # expected code; None means every bundle verifies
    note: str  # why the expectation is what it is


def plan_for(case: dict[str, Any]) -> Plan:
    case_id, kind = case["id"], case["kind"]
    if case.get("network_required"):
        return Plan(f"network required: {case['network_required']}", None, "")
    if kind == "vsa":
        return Plan(
            "a bare DSSE envelope signed with a plain key, not a Sigstore bundle "
            "(verified by the DSSE-with-keys path)",
            None,
            "",
        )
    if case_id in EXPECTED_ERRORS:
        return Plan(None, EXPECTED_ERRORS[case_id], "upstream outcome")
    if case_id in POLICY_FAILURES:
        return Plan(None, None, f"signature only: upstream failure is {POLICY_FAILURES[case_id]}")
    if case_id in DEVIATIONS:
        return Plan(None, None, f"deviation: {DEVIATIONS[case_id]}")
    if kind == "slsa-provenance":
        return Plan(None, None, "signature only: builder/source/tag checks are policy")
    if kind == "npm-attestations":
        if case.get("expected_error") == "ErrorInvalidSignature":
            return Plan(None, "signature_invalid", "upstream outcome")
        return Plan(None, None, "signature only: builder/source/package checks are policy")
    if case["expected"] in ("pass", "unspecified"):
        return Plan(None, None, "upstream outcome")
    raise AssertionError(f"unclassified failing case {case_id}: decide its expectation")


CASES = [c for c in MANIFEST["cases"] if c["kind"] in KINDS]


# -- trust --------------------------------------------------------------------------------------


def _root_doc(name: str) -> dict[str, Any]:
    builtin = BUILTIN_ALIASES.get(name)
    path = builtin_root_path(builtin) if builtin else TESTDATA / name
    return json.loads(path.read_text())


def trust_roots_for(spec: Any) -> dict[str, Any]:
    if isinstance(spec, str) and spec in BUILTIN_ALIASES:
        name = BUILTIN_ALIASES[spec]
        # The manifest's alias files are the package's own roots; use those, offline.
        return {name: load_trusted_root_file(builtin_root_path(name))}
    if isinstance(spec, str):
        return {spec: load_trusted_root_file(TESTDATA / spec)}
    doc = _root_doc(spec["base"])
    replacement = spec["replace_timestampAuthorities_with"]
    authorities: list[dict[str, Any]] = []
    if replacement:
        assert replacement == "sigstore-python/tsa/ca.json"
        path = TESTDATA / replacement
        ca = json.loads(path.read_text()) if path.is_file() else json.loads(json.dumps(TSA_CA_JSON))
        # Upstream builds the authority without a validity window, i.e. valid from the start.
        ca.setdefault("validFor", {"start": "1970-01-01T00:00:00Z"})
        authorities.append(ca)
    doc["timestampAuthorities"] = authorities
    return {BUILTIN_ALIASES[spec["base"]]: parse_trusted_root(doc)}


def trusted_key(path: Path, *aliases: str) -> dict[str, TrustedKey]:
    pem = path.read_bytes()
    public = serialization.load_pem_public_key(pem)
    if isinstance(public, ec.EllipticCurvePublicKey):
        algorithm = f"ecdsa-p{public.curve.key_size}"
    elif isinstance(public, ed25519.Ed25519PublicKey):
        algorithm = "ed25519"
    else:
        assert isinstance(public, rsa.RSAPublicKey)
        algorithm = "rsa"
    key = TrustedKey(spki_key_id(public), algorithm, public, pem.decode(), str(path))
    return {key.key_id: key, **dict.fromkeys(aliases, key)}


def trust_for(case: dict[str, Any]) -> TrustStore:
    keys: dict[str, TrustedKey] = {}
    if case.get("verification_key"):
        keys = trusted_key(TESTDATA / case["verification_key"])
    if case["kind"] == "npm-attestations":
        keys = trusted_key(TESTDATA / NPM_KEY_FILE, NPM_KEY_ID)
    return TrustStore(roots=trust_roots_for(case["trusted_root"]), keys=keys)


# -- inputs -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    label: str  # which bundle of the case (file, line or npm attestation)
    bundle: dict[str, Any]


def _documents(path: Path) -> list[dict[str, Any]]:
    text = path.read_text()
    try:
        return [json.loads(text)]
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def items_for(case: dict[str, Any]) -> list[Item]:
    files = case["files"]
    if "attestations" in files:
        attestations = json.loads((TESTDATA / files["attestations"]).read_text())["attestations"]
        return [Item(a["predicateType"], a["bundle"]) for a in attestations]
    path = files.get("bundle") or files.get("bundle_jsonl") or files["provenance"]
    docs = _documents(TESTDATA / path)
    return [Item(f"{path}#{n}", doc) for n, doc in enumerate(docs)]


def digest_for(case: dict[str, Any], bundle: dict[str, Any]) -> tuple[str, str] | None:
    """The artifact the uploader would name: the signed message, or a statement subject."""
    if case["id"].endswith("+bad-digest"):
        return ("sha256", hashlib.sha256(b"not the attested artifact").hexdigest())
    artifact = case.get("artifact") or (case.get("artifacts") or [None])[0]
    if not artifact or case.get("dsse_check_subject") is False:
        return None
    is_dsse = "dsseEnvelope" in bundle
    algorithm = case.get("digest_algorithm") or (
        "sha512" if case["kind"] == "npm-attestations" else "sha256"
    )
    if not is_dsse:
        algorithm = "sha256"  # message signatures are over the sha256 digest
    return (algorithm, artifact[algorithm]) if artifact.get(algorithm) else None


# -- identity facts -------------------------------------------------------------------------------


def identity_matches(case: dict[str, Any], document: VerifiedDocument) -> bool:
    """What the identity policy would decide from the stored facts."""
    signer = document.signers[0]
    expected = case.get("expected_identity") or {}
    policy = case.get("policy") or {}
    checks = []
    if "issuer" in expected:
        checks.append(signer.issuer == expected["issuer"])
    if "san" in expected:
        checks.append(signer.san == expected["san"])
    if "san_regex" in expected:
        checks.append(bool(signer.san and re.search(expected["san_regex"], signer.san)))
    if case["id"].startswith("gh-cli/") and "owner" in policy:
        owner_uri = f"https://github.com/{policy['owner']}"
        checks.append(signer.extensions.get("sourceRepositoryOwnerURI") == owner_uri)
    if case["id"].startswith("gh-cli/") and "repo" in policy:
        repo_uri = f"https://github.com/{policy['repo']}"
        checks.append(signer.extensions.get("sourceRepositoryURI") == repo_uri)
    for policy_name, ours in EXTENSION_POLICY_NAMES.items():
        if policy_name in policy:
            checks.append(signer.extensions.get(ours) == policy[policy_name])
    return all(checks)


# -- the test -------------------------------------------------------------------------------------


def _verify(case: dict[str, Any], trust: TrustStore, item: Item) -> VerifiedDocument:
    return verify_bundle(item.bundle, trust, message_digest=digest_for(case, item.bundle))


def _check_document(case: dict[str, Any], trust: TrustStore, document: VerifiedDocument) -> None:
    assert document.trust_root in trust.roots
    assert document.tlog and document.tlog[0].log_index >= 0
    assert document.signers and document.signers[0].kind in ("keyless", "key")
    if document.content_kind == "statement":
        assert document.subjects and all(s.digests for s in document.subjects)
        statement_file = case["files"].get("statement")
        if statement_file:
            assert document.statement == json.loads((TESTDATA / statement_file).read_text())
    if document.signers[0].kind == "keyless" and case.get("expected_identity"):
        assert identity_matches(case, document) is (case["id"] not in IDENTITY_MISMATCHES)


def _check_npm_failure(case: dict[str, Any], trust: TrustStore, items: list[Item]) -> None:
    # The file name says which of the two attestations was broken.
    broken = NPM_PUBLISH_PREDICATE if "invalidsigpub" in case["files"]["attestations"] else None
    for item in items:
        if (item.label == NPM_PUBLISH_PREDICATE) == (broken is not None):
            with pytest.raises(VerificationError) as info:
                _verify(case, trust, item)
            assert info.value.code == "signature_invalid", info.value.message
        else:
            _check_document(case, trust, _verify(case, trust, item))


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_sigstore_testdata_case(case: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    plan = plan_for(case)
    if plan.skip:
        pytest.skip(plan.skip)
    if case.get("verified_time_threshold"):
        # As upstream's test does: demand more independent sources of time than the default.
        monkeypatch.setattr(
            library_verifier, "VERIFIED_TIME_THRESHOLD", case["verified_time_threshold"]
        )
    trust = trust_for(case)
    items = items_for(case)
    if plan.error is None:
        for item in items:
            _check_document(case, trust, _verify(case, trust, item))
    elif case["kind"] == "npm-attestations":
        _check_npm_failure(case, trust, items)
    else:
        assert len(items) == 1
        with pytest.raises(VerificationError) as info:
            _verify(case, trust, items[0])
        assert info.value.code == plan.error, f"{plan.note}: {info.value.message}"


def test_manifest_cases_are_all_classified() -> None:
    """Every failing case of our kinds has a deliberate expectation (plan_for raises if not)."""
    plans = [plan_for(case) for case in CASES]
    assert len(plans) == len(CASES) > 0
