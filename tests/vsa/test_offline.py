"""``provenant vsa verify``: slsa-verifier verify-vsa's checks, offline. Its own VSA test vectors
(../shared/testdata, kind vsa) reach upstream's outcome, and a VSA Provenant signs fails on
any tampered field, wrong resource, low level, expiry or unknown key, each with its reason."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.policy.slsa import check_slsa, parse_slsa_requirement
from app.verification.errors import VerificationError
from app.verification.keyring import load_keys
from app.verification.trust import TrustStore
from app.verification.verify import verify_document
from app.vsa.envelope import sign_statement
from app.vsa.keys import VsaKeyring, VsaSigner
from app.vsa.offline import Expectations, verify_vsa
from app.vsa.summary import InputAttestation, vsa_statement

TESTDATA = Path(__file__).resolve().parents[3] / "shared" / "testdata"
if not (TESTDATA / "manifest.json").is_file():
    pytest.skip(f"shared test data not found at {TESTDATA}", allow_module_level=True)

CASES = [
    case
    for case in json.loads((TESTDATA / "manifest.json").read_text())["cases"]
    if case["kind"] == "vsa"
]
NOW = datetime.now(UTC)
DIGEST = ("sha256", "e" * 64)
RESOURCE = f"oci://ghcr.io/acme/app@sha256:{'e' * 64}"


def expectations(case: dict[str, Any]) -> Expectations:
    policy = case["policy"]
    return Expectations(
        public_key_pem=(TESTDATA / case["files"]["public_key"]).read_bytes(),
        public_key_id=policy.get("publicKeyID"),
        subject_digests=policy.get("subjectDigests", []),
        verifier_id=policy.get("verifierID"),
        resource_uri=policy.get("resourceURI"),
        verified_levels=policy.get("verifiedLevels", []),
    )


def test_vectors_were_found() -> None:
    assert len(CASES) >= 3


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_slsa_verifier_vector_reaches_upstream_outcome(case: dict[str, Any]) -> None:
    data = (TESTDATA / case["files"]["attestation"]).read_bytes()
    report = verify_vsa(data, expectations(case), NOW)
    assert report.ok is (case["expected"] == "pass"), report.reason
    assert report.error == case["expected_error"]


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> VsaSigner:
    return VsaKeyring(tmp_path_factory.mktemp("vsa-keys")).signer()


def issued(signer: VsaSigner, **changes: Any) -> dict[str, Any]:
    statement = vsa_statement(
        digest=DIGEST,
        subject_name="ghcr.io/acme/app",
        verifier_id="https://provenant.local/vsa-verifier",
        time_verified=changes.pop("time_verified", NOW),
        resource_uri=RESOURCE,
        policy_uri="https://provenant.local/vsa-verifier/policies/acme",
        policy_sha256="f" * 64,
        inputs=[InputAttestation("https://p/v1/attestations/" + "1" * 64 + "/raw", "1" * 64)],
        passed=True,
        levels=changes.pop("levels", ["SLSA_BUILD_LEVEL_3"]),
    )
    return sign_statement(statement, signer)


def expect(signer: VsaSigner, **changes: Any) -> Expectations:
    values: dict[str, Any] = {
        "public_key_pem": signer.public_key_pem.encode(),
        "public_key_id": signer.key_id,
        "subject_digests": [f"sha256:{'e' * 64}"],
        "verifier_id": "https://provenant.local/vsa-verifier",
        "resource_uri": RESOURCE,
        "verified_levels": ["SLSA_BUILD_LEVEL_2"],
        "max_age": timedelta(hours=1),
        "policy_digest": ("sha256", "f" * 64),
    }
    return Expectations(**{**values, **changes})


def check(envelope: dict[str, Any], expectations: Expectations) -> tuple[str | None, str]:
    report = verify_vsa(json.dumps(envelope).encode(), expectations, NOW)
    return report.error, report.reason


def test_an_issued_vsa_verifies(signer: VsaSigner) -> None:
    assert check(issued(signer), expect(signer)) == (
        None,
        "verifier https://provenant.local/vsa-verifier matches; resource "
        f"{RESOURCE} matches; verification result PASSED; verified levels include "
        "SLSA_BUILD_LEVEL_2",
    )


TAMPERED = {
    "_type": "https://in-toto.io/Statement/v0.1",
    "subject": [{"name": "ghcr.io/acme/app", "digest": {"sha256": "0" * 64}}],
    "predicateType": "https://slsa.dev/verification_summary/v0.2",
    "predicate.verifier": {"id": "https://evil.example"},
    "predicate.timeVerified": "2030-01-01T00:00:00Z",
    "predicate.resourceUri": "oci://ghcr.io/evil/app",
    "predicate.policy": {"uri": "x", "digest": {"sha256": "0" * 64}},
    "predicate.inputAttestations": [],
    "predicate.verificationResult": "FAILED",
    "predicate.verifiedLevels": ["SLSA_BUILD_LEVEL_4"],
    "predicate.slsaVersion": "0.1",
}


@pytest.mark.parametrize("field", list(TAMPERED))
def test_tampering_with_any_field_breaks_the_signature(signer: VsaSigner, field: str) -> None:
    envelope = issued(signer)
    statement = json.loads(base64.b64decode(envelope["payload"]))
    holder = statement["predicate"] if field.startswith("predicate.") else statement
    holder[field.removeprefix("predicate.")] = TAMPERED[field]
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    error, reason = check(envelope, expect(signer))
    assert error == "ErrorNoValidSignature"
    assert "signature_invalid" in reason and "changed after signing" in reason


@pytest.mark.parametrize(
    ("envelope_changes", "expect_changes", "error", "reason"),
    [
        (
            {},
            {"resource_uri": "oci://ghcr.io/acme/other"},
            "ErrorMismatchResourceURI",
            f"resource {RESOURCE} is not oci://ghcr.io/acme/other",
        ),
        (
            {"levels": ["SLSA_BUILD_LEVEL_1"]},
            {},
            "ErrorMismatchVerifiedLevels",
            "lack SLSA BUILD level 2 or higher (found level 1)",
        ),
        (
            {"time_verified": NOW - timedelta(hours=3)},
            {},
            "ErrorExpiredVSA",
            "VSA expired: verified at",
        ),
        (
            {},
            {"subject_digests": ["sha256:" + "0" * 64]},
            "ErrorMissingSubjectDigest",
            "expected digest not found: sha256:000",
        ),
        (
            {},
            {"verifier_id": "https://other"},
            "ErrorMismatchVerifierID",
            "verifier https://provenant.local/vsa-verifier is not https://other",
        ),
        (
            {},
            {"policy_digest": ("sha256", "0" * 64)},
            "ErrorMismatchPolicy",
            "policy digest sha256:ffff",
        ),
        (
            {},
            {"public_key_id": "another-key"},
            "ErrorNoValidSignature",
            "no signature has key id 'another-key'",
        ),
    ],
    ids=["resource", "level", "expired", "subject", "verifier", "policy", "key-id"],
)
def test_each_expectation_fails_with_its_reason(
    signer: VsaSigner,
    envelope_changes: dict,
    expect_changes: dict,
    error: str,
    reason: str,
) -> None:
    found_error, found_reason = check(
        issued(signer, **envelope_changes), expect(signer, **expect_changes)
    )
    assert found_error == error
    assert reason in found_reason


def test_an_unknown_key_fails(signer: VsaSigner, tmp_path: Path) -> None:
    stranger = VsaKeyring(tmp_path).signer()
    error, reason = check(
        issued(signer),
        expect(signer, public_key_pem=stranger.public_key_pem.encode(), public_key_id=None),
    )
    assert error == "ErrorNoValidSignature"
    assert "untrusted_key: DSSE envelope: no trusted key verifies its signature" in reason


def test_the_cli_verifies_an_upstream_vector_and_says_why_one_fails() -> None:
    case = CASES[0]
    policy = case["policy"]
    args = [
        "vsa",
        "verify",
        str(TESTDATA / case["files"]["attestation"]),
        "--public-key",
        str(TESTDATA / case["files"]["public_key"]),
        "--public-key-id",
        policy["publicKeyID"],
        "--subject-digest",
        policy["subjectDigests"][0],
        "--verifier-id",
        policy["verifierID"],
        "--resource-uri",
        policy["resourceURI"],
        *[a for level in policy["verifiedLevels"] for a in ("--verified-level", level)],
    ]
    runner = CliRunner()
    passed = runner.invoke(cli, args)
    assert passed.exit_code == 0, passed.output
    assert json.loads(passed.stdout)["verificationResult"] == "PASSED"
    stale = runner.invoke(cli, [*args, "--max-age", "7d"])
    assert stale.exit_code == 1
    assert "FAILED: ErrorExpiredVSA: VSA expired: verified at" in stale.stderr


def test_an_issued_vsa_passes_the_checks_applied_to_the_vectors(
    signer: VsaSigner, tmp_path: Path
) -> None:
    """The two halves tests/verification/test_testdata_intoto.py and
    tests/policy/test_testdata_slsa.py apply to slsa-verifier's VSA: ingest's verifier with the
    key under keys/, then the slsa: VSA checks on the Statement."""
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "hub.pub").write_text(signer.public_key_pem)
    data = json.dumps(issued(signer)).encode()
    document = verify_document(data, TrustStore(keys=load_keys(tmp_path)))
    assert document.format == "dsse"
    assert document.predicate_type == "https://slsa.dev/verification_summary/v1"
    assert document.signers[0].key_id == signer.key_id
    requirement = parse_slsa_requirement(
        {
            "verifierId": "https://provenant.local/vsa-verifier",
            "resourceUri": RESOURCE,
            "verifiedLevels": ["SLSA_BUILD_LEVEL_3"],
        }
    )
    assert check_slsa(requirement, document.statement or {}).passed
    stranger = tmp_path / "stranger"
    (stranger / "keys").mkdir(parents=True)
    (stranger / "keys" / "other.pub").write_text(VsaKeyring(tmp_path / "k").signer().public_key_pem)
    with pytest.raises(VerificationError) as raised:
        verify_document(data, TrustStore(keys=load_keys(stranger)))
    assert raised.value.code == "untrusted_key"


@pytest.mark.parametrize(
    ("content", "key", "error", "reason"),
    [
        (b"{not json", None, "ErrorInvalidDssePayload", "not a VSA envelope"),
        (b'{"payload": 1}', None, "ErrorNoValidSignature", "malformed"),
        (b"\xff\xfe", None, "ErrorInvalidDssePayload", "not a VSA envelope"),
        (None, b"not a key", "ErrorInvalidPublicKey", "--public-key is not a usable PEM"),
    ],
    ids=["json", "shape", "bytes", "key"],
)
def test_malformed_input_is_a_failure_not_a_crash(
    signer: VsaSigner,
    tmp_path: Path,
    content: bytes | None,
    key: bytes | None,
    error: str,
    reason: str,
) -> None:
    vsa_file, key_file = tmp_path / "vsa.json", tmp_path / "key.pem"
    vsa_file.write_bytes(content or json.dumps(issued(signer)).encode())
    key_file.write_bytes(key or signer.public_key_pem.encode())
    args = ["vsa", "verify", str(vsa_file), "--public-key", str(key_file)]
    result = CliRunner().invoke(cli, [*args, "--resource-uri", RESOURCE])
    assert result.exit_code == 1, result.output
    assert f"FAILED: {error}: " in result.stderr and reason in result.stderr
