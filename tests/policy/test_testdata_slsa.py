"""slsa-verifier's own regression cases (../shared/testdata, kinds slsa-provenance and vsa),
each turned into a policy, reach the outcome upstream expects.

Signatures are ingest's business: the Statement is decoded from the bundle or DSSE payload
without verifying it and only the policy part is judged. ``builder_ids_tested`` lists every
spelling upstream tries for a case (bare name, @vX.Y.Z, @refs/tags/vX.Y.Z); each must give the
expected outcome, and a failure must be the check upstream names in ``expected_error``.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from app.policy.slsa import check_slsa, parse_slsa_requirement

TESTDATA = Path(__file__).resolve().parents[3] / "shared" / "testdata"

if not (TESTDATA / "manifest.json").is_file():
    pytest.skip(f"shared test data not found at {TESTDATA}", allow_module_level=True)

KINDS = ("slsa-provenance", "vsa")
# Upstream failures this module cannot reach: they are about signatures, which ingest verifies.
SIGNATURE_ERRORS = {
    "ErrorNoValidSignature",
    "ErrorInvalidPublicKey",
    "ErrorInvalidSignature",
    "ErrorRekorSearch",
    "ErrorInvalidCertificate",
    "ErrorMismatchCertificate",
}
# slsa-verifier CLI flags (as the manifest names them) -> keys of the YAML `slsa:` mapping.
POLICY_KEYS = {
    "source": "sourceUri",
    "pbranch": "sourceBranch",
    "ptag": "sourceTag",
    "pversiontag": "sourceVersionedTag",
    "inputs": "workflowInputs",
    "verifierID": "verifierId",
    "resourceURI": "resourceUri",
    "verifiedLevels": "verifiedLevels",
}
# Options that are not checks on the Statement: `byob` tells the CLI which verifier to run
# (the build type says it here), digests and key ids are the engine's and ingest's.
NOT_POLICY = {"byob", "subjectDigests", "publicKeyID"}


def _cases() -> list[dict[str, Any]]:
    manifest = json.loads((TESTDATA / "manifest.json").read_text())
    return [case for case in manifest["cases"] if case["kind"] in KINDS]


def _statement(case: dict[str, Any]) -> dict[str, Any]:
    """The Statement inside the bundle / DSSE envelope / .jsonl, decoded without verifying."""
    path = TESTDATA / (case["files"].get("provenance") or case["files"]["attestation"])
    text = path.read_text()
    documents = (
        [json.loads(line) for line in text.splitlines() if line.strip()]
        if path.suffix == ".jsonl"
        else [json.loads(text)]
    )
    document = documents[0]
    envelope = document.get("dsseEnvelope", document)
    if "payload" not in envelope:
        pytest.skip(f"{path.name}: no DSSE payload to decode offline")
    return json.loads(base64.b64decode(envelope["payload"]))


def _spec(case: dict[str, Any]) -> dict[str, Any]:
    spec = {}
    for key, value in (case.get("policy") or {}).items():
        if key in NOT_POLICY:
            continue
        assert key in POLICY_KEYS, f"manifest policy key {key!r} has no slsa: equivalent"
        spec[POLICY_KEYS[key]] = value
    return spec


CASES = _cases()


def test_cases_were_found() -> None:
    assert len(CASES) >= 160


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_case_reaches_expected_outcome(case: dict[str, Any]) -> None:
    if case.get("network_required"):
        pytest.skip(f"needs the network: {case['network_required']}")
    if case.get("expected_error") in SIGNATURE_ERRORS:
        pytest.skip(
            f"upstream expects {case['expected_error']}: a signature failure, judged at ingest"
        )
    statement = _statement(case)
    spec = _spec(case)
    builder_ids = case.get("builder_ids_tested") or [None]
    expected_pass = case["expected"] == "pass"
    for builder_id in builder_ids:
        requirement = parse_slsa_requirement(
            {**spec, "builderId": builder_id} if builder_id else spec
        )
        result = check_slsa(requirement, statement)
        label = f"builderId={builder_id}: {result.reason}"
        assert result.passed is expected_pass, label
        if not expected_pass:
            assert result.details["error"] == case["expected_error"], label
    if case["kind"] == "vsa":
        # The engine matches the subject digest; check the manifest's digests are there.
        digests = {
            f"{algorithm}:{value}"
            for subject in statement["subject"]
            for algorithm, value in subject["digest"].items()
        }
        assert set(case["policy"].get("subjectDigests", [])) <= digests
