"""Builders for policy tests: signer facts, stored attestations, policy directories."""

from __future__ import annotations

import hashlib
import itertools
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from app.policy.engine import evaluate_images
from app.policy.facts import StoredAttestation
from app.policy.results import Evaluation
from app.policy.store import PolicySet, load_policy_set
from app.verification.facts import SignerFacts, Subject

DIGEST = "a" * 64
OTHER_DIGEST = "b" * 64
IMAGE = f"ghcr.io/acme/app@sha256:{DIGEST}"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
GITHUB = "https://token.actions.githubusercontent.com"
RELEASE_SAN = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.2.3"
EVIL_SAN = "https://github.com/evil/app/.github/workflows/release.yml@refs/tags/v1"
SLSA_V1 = "https://slsa.dev/provenance/v1"
GENERATOR = (
    "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/"
    "generator_container_slsa3.yml@refs/tags/v1.9.0"
)
HEADER = "apiVersion: provenant.dev/v1alpha1\n"
_ids = itertools.count()


class Key:
    """A throwaway ECDSA P-256 key pair."""

    def __init__(self) -> None:
        self.private = ec.generate_private_key(ec.SECP256R1())
        self.pem = (
            self.private.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    def signer(self) -> SignerFacts:
        return SignerFacts(
            kind="key",
            key_id=hashlib.sha256(self.pem.encode()).hexdigest(),
            key_algorithm="ecdsa-p256",
            public_key_pem=self.pem,
        )


def keyless(san: str = RELEASE_SAN, issuer: str = GITHUB, **extensions: str) -> SignerFacts:
    ext = {"sourceRepositoryURI": "https://github.com/acme/app", **extensions}
    return SignerFacts(kind="keyless", issuer=issuer, san=san, extensions=ext)


def provenance_v1(
    builder_id: str = GENERATOR,
    ref: str = "refs/tags/v1.2.3",
    repo: str = "https://github.com/acme/app",
) -> dict[str, Any]:
    return {
        "buildDefinition": {
            "buildType": "https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1",
            "externalParameters": {
                "workflow": {"ref": ref, "repository": repo, "path": ".github/workflows/r.yml"}
            },
            "internalParameters": {"github": {"event_name": "push"}},
            "resolvedDependencies": [
                {"uri": f"git+{repo}@{ref}", "digest": {"gitCommit": "c" * 40}}
            ],
        },
        "runDetails": {"builder": {"id": builder_id}, "metadata": {"invocationId": "1"}},
    }


def stored(
    *signers: SignerFacts,
    predicate_type: str | None = SLSA_V1,
    predicate: dict[str, Any] | None = None,
    kind: str = "statement",
    trust_root: str | None = "public-good",
    digest: str = DIGEST,
    revoked: bool = False,
    age: int = 0,
    statement: dict[str, Any] | None = None,
) -> StoredAttestation:
    """A stored attestation for ``digest``; with no predicate_type and kind message-signature
    it is a plain signature."""
    number = next(_ids)
    if kind == "statement" and statement is None:
        statement = {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "ghcr.io/acme/app", "digest": {"sha256": digest}}],
            "predicateType": predicate_type,
            "predicate": provenance_v1() if predicate is None else predicate,
        }
    return StoredAttestation(
        id=hashlib.sha256(f"attestation-{number}".encode()).hexdigest(),
        format="sigstore-bundle",
        content_kind=kind,
        predicate_type=predicate_type if kind != "message-signature" else None,
        signers=list(signers) or [keyless()],
        trust_root=trust_root,
        statement=statement,
        subjects=[Subject("ghcr.io/acme/app", {"sha256": digest})],
        uploaded_at=NOW - timedelta(minutes=age),
        revoked=revoked,
        revoked_reason="key compromised" if revoked else None,
    )


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def policy(
    name: str = "acme",
    *,
    images: str = '["ghcr.io/acme/**"]',
    extra: str = "",
    authorities: str | None = None,
    require: str | None = None,
) -> str:
    """One ImagePolicy document; ``authorities``/``require``/``extra`` are YAML at spec level
    (already indented by four spaces)."""
    authorities = authorities or (
        "  authorities:\n"
        "    - name: acme-ci\n"
        "      keyless:\n"
        "        identities:\n"
        f"          - issuer: {GITHUB}\n"
        "            subjectRegExp: '^https://github\\.com/acme/.+@refs/tags/v.*$'\n"
    )
    require = require or f"  require:\n    - predicateType: {SLSA_V1}\n"
    return (
        f"{HEADER}kind: ImagePolicy\nmetadata: {{name: {name}}}\nspec:\n"
        f"  images: {images}\n{extra}{authorities}{require}"
    )


def config(body: str = "  noMatch: deny\n") -> str:
    return f"{HEADER}kind: PolicyConfig\nspec:\n{body}"


def load(directory: Path, *documents: str) -> PolicySet:
    if documents:
        write(directory, "policy.yaml", "---\n".join(documents))
    return load_policy_set(directory)


def decide(
    policy_set: PolicySet,
    attestations: list[StoredAttestation],
    image: str = IMAGE,
    namespace: str | None = None,
    now: datetime = NOW,
) -> Evaluation:
    def lookup(algorithm: str, hex_: str) -> list[StoredAttestation]:
        return [
            a for a in attestations if any(s.digests.get(algorithm) == hex_ for s in a.subjects)
        ]

    return evaluate_images([image], namespace, policy_set, lookup, now)
