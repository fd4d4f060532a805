"""The ImagePolicy ``vsa:`` requirement (app.policy.vsa): admits on a VSA from the trusted
verifier, and says which check failed otherwise."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from app.policy.loader import PolicyLoadError
from app.policy.slsa import VSA_V1
from app.policy.store import PolicySet
from app.policy.vsa import check_vsa, parse_vsa_requirement
from tests.policy.helpers import DIGEST, NOW, Key, decide, load, policy, stored, write

VERIFIER = "https://hub.example/vsa-verifier"
RESOURCE = f"oci://ghcr.io/acme/app@sha256:{DIGEST}"
POLICY_SHA = "c" * 64


def vsa(**changes: Any) -> dict[str, Any]:
    predicate = {
        "verifier": {"id": VERIFIER, "version": {"provenant": "0.1.0"}},
        "timeVerified": (NOW - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "resourceUri": RESOURCE,
        "policy": {"uri": f"{VERIFIER}/policies/acme", "digest": {"sha256": POLICY_SHA}},
        "inputAttestations": [],
        "verificationResult": "PASSED",
        "verifiedLevels": ["SLSA_BUILD_LEVEL_3"],
        "slsaVersion": "1.0",
        **changes,
    }
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "ghcr.io/acme/app", "digest": {"sha256": DIGEST}}],
        "predicateType": VSA_V1,
        "predicate": predicate,
    }


def requirement(**fields: Any) -> str:
    spec = {
        "policyUri": f"{VERIFIER}/policies/acme",
        "verifierId": VERIFIER,
        "publicKey": "{file: keys/hub.pub}",
        "minLevel": "SLSA_BUILD_LEVEL_2",
        "resourceUri": "'oci://{name}@{digest}'",
        "maxAge": "24h",
        "policyDigest": f"sha256:{POLICY_SHA}",
        **fields,
    }
    body = "".join(f"        {k}: {v}\n" for k, v in spec.items() if v is not None)
    return f"  require:\n    - vsa:\n{body}"


@pytest.fixture
def hub() -> Key:
    return Key()


def policy_set(directory: Path, hub: Key, **fields: Any) -> PolicySet:
    write(directory, "keys/hub.pub", hub.pem)
    return load(directory, policy(authorities="", require=requirement(**fields)))


def reason(
    directory: Path, hub: Key, statement: dict[str, Any], signer: Key | None = None, **fields: Any
) -> str:
    signer = signer or hub
    attestation = stored(signer.signer(), predicate_type=VSA_V1, statement=statement)
    result = decide(policy_set(directory, hub, **fields), [attestation])
    assert not result.allowed
    return result.images[0].reason


def test_a_fresh_vsa_from_the_trusted_verifier_admits(policy_dir: Path, hub: Key) -> None:
    attestation = stored(hub.signer(), predicate_type=VSA_V1, statement=vsa())
    result = decide(policy_set(policy_dir, hub), [attestation])
    assert result.allowed, result.images[0].reason
    requirement = result.images[0].policies[0].requirements[0]
    assert requirement.attestations == (attestation.id,)
    assert requirement.name == "vsa from https://hub.example/vsa-verifier"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"verifier": {"id": "https://evil.example"}}, "verifier https://evil.example is not"),
        ({"resourceUri": "oci://ghcr.io/acme/other@sha256:" + DIGEST}, "resource oci://ghcr"),
        ({"verifiedLevels": ["SLSA_BUILD_LEVEL_1"]}, "lack SLSA BUILD level 2 or higher"),
        ({"verificationResult": "FAILED"}, "verification result is FAILED"),
        ({"policy": {"digest": {"sha256": "d" * 64}}}, "policy digest sha256:dddd"),
        ({"timeVerified": "2026-02-27T11:00:00Z"}, "VSA expired: verified at 2026-02-27"),
        ({"timeVerified": "2026-03-02T12:00:00Z"}, "is in the future"),
        ({"timeVerified": "yesterday"}, "is not an RFC 3339 time"),
        (
            {"policy": {"uri": "https://x", "digest": {"sha256": POLICY_SHA}}},
            "policy uri https://x is not https://hub.example/vsa-verifier/policies/acme",
        ),
    ],
    ids=["verifier", "resource", "level", "failed", "policy", "expired", "future", "time", "uri"],
)
def test_each_check_denies_with_its_reason(
    policy_dir: Path, hub: Key, changes: dict[str, Any], expected: str
) -> None:
    assert expected in reason(policy_dir, hub, vsa(**changes))


def test_a_vsa_signed_by_another_key_is_not_the_verifiers(policy_dir: Path, hub: Key) -> None:
    text = reason(policy_dir, hub, vsa(), signer=Key())
    assert "vsa.publicKey expects key" in text and "(keys/hub.pub), found key" in text


def test_no_vsa_is_missing(policy_dir: Path, hub: Key) -> None:
    result = decide(policy_set(policy_dir, hub), [])
    assert f"no attestation of type {VSA_V1} for sha256:{DIGEST}" in result.images[0].reason


def test_provenance_is_not_a_vsa(policy_dir: Path, hub: Key) -> None:
    result = decide(policy_set(policy_dir, hub), [stored(hub.signer())])
    assert not result.allowed


def test_exact_resource_uri_and_numeric_level_without_max_age(policy_dir: Path, hub: Key) -> None:
    attestation = stored(
        hub.signer(), predicate_type=VSA_V1, statement=vsa(timeVerified="2020-01-01T00:00:00Z")
    )
    allowed = decide(
        policy_set(
            policy_dir, hub, resourceUri=RESOURCE, minLevel=3, maxAge=None, policyDigest=None
        ),
        [attestation],
    )
    assert allowed.allowed, allowed.images[0].reason


@pytest.mark.parametrize("spelling", ["keys/hub.pub", "inline"])
def test_public_key_in_the_flat_spelling(policy_dir: Path, hub: Key, spelling: str) -> None:
    key = (
        "|\n          " + hub.pem.strip().replace("\n", "\n          ")
        if spelling == "inline"
        else spelling
    )
    attestation = stored(hub.signer(), predicate_type=VSA_V1, statement=vsa())
    result = decide(policy_set(policy_dir, hub, publicKey=key), [attestation])
    assert result.allowed, result.images[0].reason


def test_a_bare_digest_has_no_name_for_the_resource_template() -> None:
    rule = parse_vsa_requirement(
        {"verifierId": VERIFIER, "publicKey": "k", "minLevel": 1, "resourceUri": "oci://{name}"}
    )
    checked = check_vsa(rule, vsa(), now=NOW, image_name=None, digest=f"sha256:{DIGEST}")
    assert not checked.passed
    assert "names {name} but sha256:" in checked.reason


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"minLevel": "SLSA_BUILD_LEVEL_X"}, "is not SLSA_<TRACK>_LEVEL_<N>"),
        ({"minLevel": 7}, "SLSA build levels are 0 to 4"),
        ({"maxAge": "soon"}, "must be a positive duration"),
        ({"policyDigest": "sha256:abc"}, "must look like sha256:<64 hex digits>"),
        ({"resourceUri": "'oci://{image}'"}, "unknown placeholder {image}"),
        ({"verifierId": None}, "vsa.verifierId: required"),
        ({"publicKey": "{file: keys/missing.pub}"}, "does not exist in the policy directory"),
        ({"publicKey": "[1, 2]"}, "must be a file of the policy directory"),
        ({"colour": "blue"}, "vsa.colour: unknown key"),
    ],
)
def test_bad_vsa_requirements_are_load_errors(
    policy_dir: Path, hub: Key, fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(PolicyLoadError) as raised:
        policy_set(policy_dir, hub, **fields)
    assert message in str(raised.value)


def test_a_vsa_requirement_stands_alone(policy_dir: Path, hub: Key) -> None:
    write(policy_dir, "keys/hub.pub", hub.pem)
    text = requirement().replace("    - vsa:\n", "    - predicateType: x\n      vsa:\n")
    with pytest.raises(PolicyLoadError, match="a vsa requirement cannot also set predicateType"):
        load(policy_dir, policy(authorities="", require=text))


def test_a_key_outside_keys_dir_is_a_warning(policy_dir: Path, hub: Key) -> None:
    write(policy_dir, "elsewhere/hub.pub", hub.pem)
    loaded = load(
        policy_dir,
        policy(authorities="", require=requirement(publicKey="{file: elsewhere/hub.pub}")),
    )
    assert any("is not under keys/" in w for w in loaded.warnings)
