"""Policy evaluation latency: one image, 3 matching policies, 50 stored attestations.

The lookup is in memory, so this measures the engine alone (globs, authorities, SLSA checks,
CEL conditions, explanations); the database query admission adds is measured elsewhere.
Prints the median of many evaluations (target: under 1 ms) for two orderings:
  typical: the newest attestation of each kind passes (what CI produces);
  worst:   the passing ones are the oldest, so every other candidate is judged and explained;
each warm (the image was evaluated before: CEL contexts are cached by attestation id, as for
every Pod of a Deployment) and cold (first evaluation: statements converted to CEL values).

    .venv/bin/python bench/evaluate.py [-n 2000]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import tempfile
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

from app.policy import engine  # noqa: E402
from app.policy.cel_conditions import ContextCache  # noqa: E402
from app.policy.engine import evaluate  # noqa: E402
from app.policy.facts import StoredAttestation  # noqa: E402
from app.policy.store import PolicySet, load_policy_set  # noqa: E402
from app.verification.facts import SignerFacts, Subject  # noqa: E402

DIGEST = "ab" * 32
IMAGE = f"ghcr.io/acme/app@sha256:{DIGEST}"
NOW = datetime(2026, 3, 1, tzinfo=UTC)
GITHUB = "https://token.actions.githubusercontent.com"
GENERATOR = (
    "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/"
    "generator_container_slsa3.yml@refs/tags/v1.9.0"
)
SLSA = "https://slsa.dev/provenance/v1"
SBOM = "https://cyclonedx.org/bom"
VULN = "https://cosign.sigstore.dev/attestation/vuln/v1"
Spec = tuple[str | None, Any, "SignerFacts"]  # predicate type, predicate, signer

POLICIES = """\
apiVersion: provenant.dev/v1alpha1
kind: ImagePolicy
metadata: {name: provenance}
spec:
  images: ["ghcr.io/acme/**"]
  authorities:
    - name: generator
      keyless:
        identities:
          - issuer: https://token.actions.githubusercontent.com
            subjectRegExp: '^https://github\\.com/slsa-framework/slsa-github-generator/.+@refs/tags/v.*$'
        claims: {sourceRepositoryURI: https://github.com/acme/app}
  require:
    - predicateType: https://slsa.dev/provenance/v1
      slsa:
        builderId: {prefix: https://github.com/slsa-framework/slsa-github-generator/}
        sourceUri: github.com/acme/app
        sourceVersionedTag: v1
      conditions:
        - expression: >-
            predicate.buildDefinition.externalParameters.workflow.ref.startsWith("refs/tags/")
---
apiVersion: provenant.dev/v1alpha1
kind: ImagePolicy
metadata: {name: signed}
spec:
  images: ["ghcr.io/acme/*"]
  authorities:
    - {name: release, key: {file: keys/release.pub}}
  require:
    - {}
---
apiVersion: provenant.dev/v1alpha1
kind: ImagePolicy
metadata: {name: sbom-and-scan}
spec:
  images: ["ghcr.io/**/app"]
  mode: warn
  authorities:
    - {name: release, key: {file: keys/release.pub}}
  require:
    - predicateType: cyclonedx
      conditions: [{expression: 'size(predicate.components) > 0'}]
    - predicateType: vuln
      conditions:
        - expression: 'predicate.scanner.result.vulnerabilities.all(v, v.severity != "CRITICAL")'
"""


def public_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def provenance(ref: str) -> dict[str, object]:
    return {
        "buildDefinition": {
            "buildType": "https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1",
            "externalParameters": {
                "workflow": {
                    "ref": ref,
                    "repository": "https://github.com/acme/app",
                    "path": ".github/workflows/release.yml",
                }
            },
            "internalParameters": {"github": {"event_name": "push"}},
            "resolvedDependencies": [
                {"uri": f"git+https://github.com/acme/app@{ref}", "digest": {"gitCommit": "c" * 40}}
            ],
        },
        "runDetails": {"builder": {"id": GENERATOR}, "metadata": {"invocationId": "1"}},
    }


def attestation(
    number: int, predicate_type: str | None, predicate: object, signer: SignerFacts
) -> StoredAttestation:
    statement = None
    if predicate_type is not None:
        statement = {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "ghcr.io/acme/app", "digest": {"sha256": DIGEST}}],
            "predicateType": predicate_type,
            "predicate": predicate,
        }
    # Ids name content (ingest uses the hash of the uploaded bytes); the engine caches by id.
    content = json.dumps([number, statement, signer.san, signer.public_key_pem], sort_keys=True)
    return StoredAttestation(
        id=hashlib.sha256(content.encode()).hexdigest(),
        format="sigstore-bundle",
        content_kind="statement" if predicate_type else "message-signature",
        predicate_type=predicate_type,
        signers=[signer],
        trust_root="public-good",
        statement=statement,
        subjects=[Subject("ghcr.io/acme/app", {"sha256": DIGEST})],
        uploaded_at=NOW - timedelta(minutes=number),
    )


def stored_attestations(release_pem: str, passing_last: bool) -> list[StoredAttestation]:
    generator = SignerFacts(
        kind="keyless",
        issuer=GITHUB,
        san=GENERATOR,
        extensions={"sourceRepositoryURI": "https://github.com/acme/app"},
    )
    fork = SignerFacts(
        kind="keyless",
        issuer=GITHUB,
        san="https://github.com/acme/fork/.github/workflows/build.yml@refs/heads/main",
        extensions={"sourceRepositoryURI": "https://github.com/acme/fork"},
    )
    release = SignerFacts(kind="key", key_id="release", public_key_pem=release_pem)
    stranger = SignerFacts(kind="key", key_id="stranger", public_key_pem=public_pem())
    components = [{"name": f"lib{i}", "version": "1.0"} for i in range(40)]
    vulns = [{"id": f"CVE-{i}", "severity": "LOW"} for i in range(20)]
    good: list[Spec] = [
        (SLSA, provenance("refs/tags/v1.4.2"), generator),
        (None, None, release),
        (SBOM, {"components": components}, release),
        (VULN, {"scanner": {"result": {"vulnerabilities": vulns}}}, release),
    ]
    noise: list[Spec] = (
        [(SLSA, provenance("refs/heads/main"), fork)] * 16
        + [(SLSA, provenance("refs/heads/feature"), generator)] * 6
        + [(None, None, stranger)] * 8
        + [(SBOM, {"components": []}, release)] * 8
        + [(VULN, {"scanner": {"result": {"vulnerabilities": []}}}, stranger)] * 8
    )
    ordered = noise + good if passing_last else good + noise
    return [attestation(n, t, p, s) for n, (t, p, s) in enumerate(ordered)]


def measure(
    policy_set: PolicySet, attestations: list[StoredAttestation], rounds: int, *, cold: bool
) -> float:
    def lookup(algorithm: str, hex_: str) -> list[StoredAttestation]:
        return attestations

    result = evaluate(IMAGE, "prod", policy_set, lookup, NOW)
    assert result.allowed, result.reason
    assert len(result.images[0].policies) == 3
    timings = []
    for _ in range(rounds):
        if cold:  # as for an image seen for the first time: no prepared CEL contexts
            engine._CONTEXTS = ContextCache()
            engine._WIDTHS.clear()
        started = time.perf_counter()
        evaluate(IMAGE, "prod", policy_set, lookup, NOW)
        timings.append(time.perf_counter() - started)
    return statistics.median(timings) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000, help="evaluations per ordering")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        release_pem = public_pem()
        (directory / "keys").mkdir()
        (directory / "keys" / "release.pub").write_text(release_pem)
        (directory / "policies.yaml").write_text(textwrap.dedent(POLICIES))
        policy_set = load_policy_set(directory)
        results = {
            (order, state): measure(
                policy_set,
                stored_attestations(release_pem, order == "worst"),
                args.n,
                cold=state == "cold",
            )
            for order in ("typical", "worst")
            for state in ("warm", "cold")
        }
    print("one image, 3 matching policies, 50 stored attestations, in-memory lookup")
    print("median ms    warm (image seen before)   cold (first time)")
    for order, label in (("typical", "newest pass"), ("worst", "oldest pass")):
        warm, cold = results[(order, "warm")], results[(order, "cold")]
        print(f"{order:8} ({label}): {warm:8.3f} {cold:24.3f}")
    headline = results[("typical", "warm")]
    print(
        f"median evaluation: {headline:.3f} ms (target under 1 ms: "
        f"{'met' if headline < 1 else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
