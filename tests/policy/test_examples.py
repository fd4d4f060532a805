"""The shipped policies/ examples decide as their comments say."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.policy.store import PolicySet, load_policy_set
from tests.policy.helpers import DIGEST, GENERATOR, NOW, Key, decide, keyless, stored

REPO_POLICIES = Path(__file__).resolve().parents[2] / "policies"
GENERATOR_SAN = GENERATOR
WEB_SAN = "https://github.com/acme-web/site/.github/workflows/release.yml@refs/tags/v2.0.0"


@pytest.fixture(scope="module")
def shipped() -> PolicySet:
    return load_policy_set(REPO_POLICIES)


def container_generator_v02(ref: str = "refs/tags/v1.2.3") -> dict[str, object]:
    source = f"git+https://github.com/acme/app@{ref}"
    return {
        "builder": {"id": GENERATOR},
        "buildType": "https://github.com/slsa-framework/slsa-github-generator/container@v1",
        "invocation": {
            "configSource": {
                "uri": source,
                "digest": {"sha1": "c" * 40},
                "entryPoint": ".github/workflows/release.yml",
            },
            "parameters": {},
            "environment": {"github_event_name": "push", "github_ref": ref},
        },
        "materials": [{"uri": source, "digest": {"sha1": "c" * 40}}],
    }


def github_attestation_v1(ref: str = "refs/tags/v2.0.0") -> dict[str, object]:
    return {
        "buildDefinition": {
            "buildType": "https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1",
            "externalParameters": {
                "workflow": {
                    "ref": ref,
                    "repository": "https://github.com/acme-web/site",
                    "path": ".github/workflows/release.yml",
                }
            },
            "internalParameters": {"github": {"event_name": "push"}},
            "resolvedDependencies": [
                {
                    "uri": f"git+https://github.com/acme-web/site@{ref}",
                    "digest": {"gitCommit": "d" * 40},
                }
            ],
        },
        "runDetails": {
            "builder": {"id": "https://github.com/actions/runner/github-hosted"},
            "metadata": {"invocationId": "https://github.com/acme-web/site/actions/runs/1"},
        },
    }


def test_slsa_generator_example(shipped: PolicySet) -> None:
    signer = keyless(san=GENERATOR_SAN, sourceRepositoryOwnerURI="https://github.com/acme")
    provenance = stored(
        signer,
        predicate_type="https://slsa.dev/provenance/v0.2",
        predicate=container_generator_v02(),
    )
    image = f"ghcr.io/acme/app@sha256:{DIGEST}"
    result = decide(shipped, [provenance], image=image, namespace="prod-eu")
    assert result.allowed, result.reason
    fork = keyless(san=GENERATOR_SAN, sourceRepositoryOwnerURI="https://github.com/evil")
    denied = decide(
        shipped,
        [
            stored(
                fork,
                predicate_type="https://slsa.dev/provenance/v0.2",
                predicate=container_generator_v02(),
            )
        ],
        image=image,
        namespace="prod-eu",
    )
    assert not denied.allowed
    assert "expects claim sourceRepositoryOwnerURI" in denied.reason


def test_github_artifact_attestation_example(shipped: PolicySet) -> None:
    signer = keyless(san=WEB_SAN, runnerEnvironment="github-hosted")
    image = f"ghcr.io/acme-web/site@sha256:{DIGEST}"
    good = stored(signer, predicate=github_attestation_v1())
    assert decide(shipped, [good], image=image, namespace="prod").allowed
    branch = stored(signer, predicate=github_attestation_v1(ref="refs/heads/main"))
    result = decide(shipped, [branch], image=image, namespace="prod")
    assert not result.allowed
    # A tag workflow's certificate cannot vouch for a branch build: the builder binding says so
    # before the policy's own condition on the ref is reached.
    assert "release.yml@refs/heads/main ran on" in result.reason
    assert f"but the signer is the workflow {WEB_SAN}" in result.reason


def test_key_signed_release_example(shipped: PolicySet) -> None:
    image = f"registry.acme.example/releases/app@sha256:{DIGEST}"
    result = decide(shipped, [], image=image)
    assert not result.allowed
    (signed, scanned) = result.images[0].policies
    assert signed.requirements[0].status == "missing"
    assert scanned.mode == "warn" and not scanned.passed
    # An unknown key's signature is present but failing.
    stranger = stored(Key().signer(), kind="message-signature", statement=None)
    failing = decide(shipped, [stranger], image=image).images[0].policies[0].requirements[0]
    assert failing.status == "failing" and "release-key expects key" in failing.reason


def test_system_images_are_exempt_and_system_namespaces_excluded(shipped: PolicySet) -> None:
    assert decide(shipped, [], image="registry.k8s.io/pause:3.9", now=NOW).allowed
    assert decide(shipped, [], image="nginx:latest", namespace="kube-system").allowed
    unknown = decide(shipped, [], image=f"quay.io/someone/tool@sha256:{DIGEST}")
    assert not unknown.allowed and "(noMatch: deny)" in unknown.reason
    tag = decide(shipped, [], image="ghcr.io/acme/app:latest", namespace="prod-eu")
    assert not tag.allowed and "tagOnly: deny" in tag.reason
