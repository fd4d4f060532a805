"""verifiedLevels from the requirement and the attestation it used: L3 only from a signer the
requirement accepted that is the isolated builder itself, at the ref the provenance claims.

These start from stored facts (what ingest recorded after verifying), as tests/policy does; the
API tests in test_api.py sign real bundles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.policy.engine import Run, evaluate_policy
from app.policy.facts import StoredAttestation
from app.policy.lookup import LookupCache
from app.policy.matching import parse_image
from app.verification.facts import SignerFacts
from app.vsa.levels import verified_levels
from tests.policy.helpers import (
    DIGEST,
    GITHUB,
    IMAGE,
    NOW,
    SLSA_V1,
    Key,
    keyless,
    load,
    policy,
    provenance_v1,
    stored,
)

GENERATOR = (
    "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/"
    "generator_generic_slsa3.yml"
)
AT_TAG = f"{GENERATOR}@refs/tags/v2.0.0"
KEY = Key()


def generator_signer(workflow: str = AT_TAG) -> SignerFacts:
    return keyless(workflow, buildSignerURI=workflow)


def levels(tmp_path: Path, authorities: str, *signers: SignerFacts) -> list[str]:
    require = (
        f"  require:\n    - predicateType: {SLSA_V1}\n      slsa: {{builderId: {GENERATOR}}}\n"
    )
    policy_set = load(tmp_path, policy(authorities=authorities, require=require))
    [compiled] = policy_set.policies
    attestation = stored(*signers, predicate=provenance_v1(AT_TAG))

    def lookup(algorithm: str, hex_: str) -> list[StoredAttestation]:
        return [attestation] if hex_ == DIGEST else []

    cache = LookupCache(lookup, lookup)
    result = evaluate_policy(compiled, Run(parse_image(IMAGE), ("sha256", DIGEST), cache, NOW))
    used = [
        (compiled.requirements[r.index], attestation)
        for r in result.requirements
        if r.passed and attestation.id in r.attestations
    ]
    return verified_levels(result.passed, used)


GITHUB_ANYONE = (
    "  authorities:\n"
    "    - name: github\n"
    "      keyless:\n"
    "        identities:\n"
    f"          - issuer: {GITHUB}\n"
    "            subjectRegExp: '^https://github\\.com/.+$'\n"
)
# Accepts only acme's workflows (not the generator's), and the builder's key.
ACME_AND_KEY = (
    "  authorities:\n"
    "    - name: acme-ci\n"
    "      keyless:\n"
    "        identities:\n"
    f"          - issuer: {GITHUB}\n"
    "            subjectRegExp: '^https://github\\.com/acme/.+$'\n"
    "    - name: builder-key\n"
    f"      key: {{data: {json.dumps(KEY.pem)}}}\n"
)


def test_the_generator_signing_its_own_provenance_is_l3(tmp_path: Path) -> None:
    assert levels(tmp_path, GITHUB_ANYONE, generator_signer()) == ["SLSA_BUILD_LEVEL_3"]


def test_l3_is_not_borrowed_from_a_signer_the_requirement_did_not_accept(
    tmp_path: Path,
) -> None:
    # The key authority is bound to the pinned builder by the policy; the generator's keyless
    # signature on the same envelope is not one the requirement accepts.
    assert levels(tmp_path, ACME_AND_KEY, KEY.signer()) == ["SLSA_BUILD_LEVEL_2"]
    assert levels(tmp_path, ACME_AND_KEY, KEY.signer(), generator_signer()) == [
        "SLSA_BUILD_LEVEL_2"
    ]


@pytest.mark.parametrize(
    "workflow",
    [f"{GENERATOR}@refs/tags/v2.1.0", f"{GENERATOR}@refs/heads/main"],
)
def test_a_generator_at_another_ref_than_claimed_is_not_bound(
    tmp_path: Path, workflow: str
) -> None:
    assert levels(tmp_path, GITHUB_ANYONE, generator_signer(workflow)) == ["FAILED"]
