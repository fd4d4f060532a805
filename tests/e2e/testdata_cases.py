"""../shared/testdata cases as a user would run them: a policy stating upstream's expectation,
the case's files uploaded to the real server, then ``POST /v1/evaluate`` on the artifact.

Each case becomes one ImagePolicy per builder id upstream tries, selecting an image name of its
own (``cases.test/<n>/<k>``) and evaluated at the artifact's digest; a case agrees with upstream
when every one of its evaluations is allowed (upstream: pass) or some upload or evaluation is
refused (upstream: fail). A policy Provenant refuses to load (an ``slsa:`` block without
``builderId``) is a refusal too, checked with the loader the server uses.

The mapping from upstream options to policy keys is the point of this module; where an
upstream option has no policy equivalent the case says so in ``unmapped``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

TESTDATA = Path(__file__).resolve().parents[3] / "shared" / "testdata"
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
NPM_KEY_FILE = "sigstore-go/examples/publish_key.pub"
NPM_KEY_ID = "SHA256:jl3bwswu80PjjokCgh0o2w5c2U4LhQAE57gj9cz1kzA"
NPM_PUBLISH = "https://github.com/npm/attestation/tree/main/specs/publish/v0.1"
BUILTIN = {"sigstore-production-embedded": "public-good", "sigstore-staging-embedded": "staging"}
KINDS = {
    "sigstore-bundle-artifact",
    "sigstore-bundle-dsse",
    "sigstore-bundle-managed-key",
    "github-attestation-bundle",
    "slsa-provenance",
    "npm-attestations",
    "vsa",
    "intoto-attestation-slsa-provenance-v1-predicate",
    "intoto-attestation-statement",
    "intoto-attestation-resource-descriptor",
}
# slsa-verifier CLI flags (as the manifest names them) -> keys of the `slsa:` mapping.
SLSA_KEYS = {
    "source": "sourceUri",
    "pbranch": "sourceBranch",
    "ptag": "sourceTag",
    "pversiontag": "sourceVersionedTag",
    "inputs": "workflowInputs",
    "verifierID": "verifierId",
    "resourceURI": "resourceUri",
    "verifiedLevels": "verifiedLevels",
}
# sigstore-python policy names -> Fulcio extension claims.
CLAIMS = {
    "GitHubWorkflowRepository": "githubWorkflowRepository",
    "GitHubWorkflowRef": "githubWorkflowRef",
    "GitHubWorkflowSHA": "githubWorkflowSha",
    "OIDCSourceRepositoryURI": "sourceRepositoryURI",
}
# sigstore-python's Verifier refuses v0.1 bundles without a checkpointed inclusion proof and
# the gh CLI bundles older than v0.2; both are stated as policy options here.
REQUIRE_PROOF = {"sigstore-python/integration/Python-3.12.5.tgz"}
MIN_VERSION = {"gh-cli/sigstore-js-2.1.0-bundle-v0.1": "0.2"}
POLICY_OPTIONS = True


@dataclass
class Upload:
    body: bytes
    subject_digest: str | None = None  # message-signature bundles: the signed artifact


@dataclass
class Plan:
    number: int
    case: dict[str, Any]
    uploads: list[Upload] = field(default_factory=list)
    policies: list[dict[str, Any]] = field(default_factory=list)  # ImagePolicy documents
    images: list[str] = field(default_factory=list)
    refused_policy: dict[str, Any] | None = None  # a policy Provenant must refuse to load
    unmapped: list[str] = field(default_factory=list)

    @property
    def expected_pass(self) -> bool:
        return self.case["expected"] in ("pass", "valid")


def decidable(case: dict[str, Any]) -> bool:
    return (
        case["kind"] in KINDS
        and not case.get("network_required")
        and case["expected"] in ("pass", "fail", "valid", "invalid")
    )


# -- trust ----------------------------------------------------------------------------------------


def root_name(spec: Any) -> str:
    if spec is None:
        return ""
    if isinstance(spec, str) and spec in BUILTIN:
        return BUILTIN[spec]
    text = spec if isinstance(spec, str) else f"{spec['base']}-tsa-{bool(spec[_REPLACE])}"
    return "case-" + re.sub(r"[^a-z0-9]+", "-", Path(text).stem.lower()).strip("-")


_REPLACE = "replace_timestampAuthorities_with"


def root_document(spec: Any) -> dict[str, Any]:
    if isinstance(spec, str):
        return json.loads((TESTDATA / spec).read_text())
    from app.verification.trust_roots import builtin_root_path

    doc = json.loads(builtin_root_path(BUILTIN[spec["base"]]).read_text())
    replacement = spec[_REPLACE]
    doc["timestampAuthorities"] = []
    if replacement:
        from tests.verification.test_testdata_sigstore import TSA_CA_JSON

        path = TESTDATA / replacement
        ca = json.loads(path.read_text()) if path.is_file() else json.loads(json.dumps(TSA_CA_JSON))
        # Upstream builds the authority without a validity window: valid from the start.
        doc["timestampAuthorities"] = [ca]
    return doc


def write_trust(policy_dir: Path, cases: list[dict[str, Any]], harness_key_pem: bytes) -> None:
    (policy_dir / "trust").mkdir(parents=True, exist_ok=True)
    keys = policy_dir / "keys"
    keys.mkdir(exist_ok=True)
    for case in cases:
        spec = case["trusted_root"]
        if spec is not None and not (isinstance(spec, str) and spec in BUILTIN):
            path = policy_dir / "trust" / f"{root_name(spec)}.json"
            if not path.exists():
                path.write_text(json.dumps(root_document(spec)))
        for name in ("verification_key", "public_key"):
            key = case.get(name) or case["files"].get(name)
            if key:
                (keys / key_file_name(key)).write_bytes((TESTDATA / key).read_bytes())
    npm_pem = (TESTDATA / NPM_KEY_FILE).read_text()
    # npm names its registry key by an id nothing can compute: the JSON key file carries it.
    (keys / "npm-registry.json").write_text(
        json.dumps(
            {
                NPM_KEY_ID: {
                    "keytype": "ecdsa",
                    "scheme": "ecdsa-sha2-nistp256",
                    "keyval": {"public": npm_pem},
                }
            }
        )
    )
    (keys / "npm-registry.pub").write_text(npm_pem)
    (keys / "harness.pub").write_bytes(harness_key_pem)


def key_file_name(path: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", path.lower())


# -- documents ------------------------------------------------------------------------------------


def _documents(path: Path) -> list[dict[str, Any]]:
    text = path.read_text()
    try:
        return [json.loads(text)]
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def _statement(document: dict[str, Any]) -> dict[str, Any] | None:
    envelope = document.get("dsseEnvelope", document)
    try:
        return json.loads(base64.b64decode(envelope["payload"]))
    except (KeyError, ValueError, TypeError):
        return None


def _artifact_digest(case: dict[str, Any], algorithm: str = "sha256") -> str | None:
    artifact = case.get("artifact") or (case.get("artifacts") or [None])[0]
    if not artifact:
        return None
    if algorithm not in artifact and "inline_utf8" in artifact and algorithm == "sha512":
        return hashlib.sha512(artifact["inline_utf8"].encode()).hexdigest()
    return artifact.get(algorithm)


# -- policy -------------------------------------------------------------------------------------


def _keyless(case: dict[str, Any], plan: Plan) -> dict[str, Any]:
    expected = case.get("expected_identity") or {}
    identity: dict[str, str] = {}
    identity["issuer" if "issuer" in expected else "issuerRegExp"] = expected.get("issuer", ".+")
    if "san" in expected:
        identity["subject"] = expected["san"]
    elif "san_regex" in expected:
        # Upstream searches; policy expressions are anchored.
        pattern = expected["san_regex"]
        identity["subjectRegExp"] = (
            pattern + ".*" if pattern.startswith("^") else ".*" + pattern + ".*"
        )
    else:
        identity["subjectRegExp"] = ".+"
    keyless: dict[str, Any] = {
        "trustRoot": root_name(case["trusted_root"]),
        "identities": [identity],
    }
    policy = case.get("policy") or {}
    claims = {CLAIMS[k]: v for k, v in policy.items() if k in CLAIMS}
    if case["id"].startswith("gh-cli/"):
        if "owner" in policy:
            claims["sourceRepositoryOwnerURI"] = f"https://github.com/{policy['owner']}"
        if "repo" in policy:
            claims["sourceRepositoryURI"] = f"https://github.com/{policy['repo']}"
        if "signer_workflow" in policy:
            workflow = re.escape(f"https://github.com/{policy['signer_workflow']}")
            keyless["claimsRegExp"] = {"buildSignerURI": workflow + "@.*"}
    if claims:
        keyless["claims"] = claims
    if not POLICY_OPTIONS:
        return {"name": "signer", "keyless": keyless}
    if case["id"] in REQUIRE_PROOF:
        keyless["requireInclusionProof"] = True
    if case["id"] in MIN_VERSION:
        keyless["minBundleVersion"] = MIN_VERSION[case["id"]]
    threshold = policy.get("signed_timestamps_threshold")
    if threshold:
        keyless["verifiedTimestamps"] = threshold
    return {"name": "signer", "keyless": keyless}


def _key(path: str) -> dict[str, Any]:
    return {"name": "signer", "key": {"file": f"keys/{key_file_name(path)}"}}


def _policy(plan: Plan, variant: int, authorities: list[dict[str, Any]], require: list[Any]) -> str:
    image = f"cases.test/c{plan.number}/b{variant}"
    plan.policies.append(
        {
            "apiVersion": "provenant.dev/v1alpha1",
            "kind": "ImagePolicy",
            "metadata": {"name": f"c{plan.number}-b{variant}"},
            "spec": {"images": [image], "authorities": authorities, "require": require},
        }
    )
    return image


def plan_case(number: int, case: dict[str, Any], harness_sign: Any) -> Plan:
    plan = Plan(number, case)
    kind = case["kind"]
    files = case["files"]
    if kind == "intoto-attestation-slsa-provenance-v1-predicate":
        return _plan_predicate_vector(plan, harness_sign)
    if kind == "intoto-attestation-statement":
        return _plan_statement_vector(plan, harness_sign)
    if kind == "intoto-attestation-resource-descriptor":
        return _plan_descriptor_vector(plan, harness_sign)
    if kind == "npm-attestations":
        return _plan_npm(plan)
    if kind == "vsa":
        return _plan_vsa(plan)
    path = files.get("bundle") or files.get("bundle_jsonl") or files.get("provenance")
    documents = _documents(TESTDATA / path)
    statement = _statement(documents[0]) if "dsseEnvelope" in documents[0] else None
    key = case.get("verification_key")
    authorities = [_key(key) if key else _keyless(case, plan)]
    if statement is None:  # a message signature over the artifact
        digest = _artifact_digest(case)
        assert digest, case["id"]
        plan.uploads = [Upload(json.dumps(d).encode(), f"sha256:{digest}") for d in documents]
        image = _policy(plan, 0, authorities, [{"name": "signed"}])
        plan.images.append(f"{image}@sha256:{digest}")
        return plan
    plan.uploads = [Upload(json.dumps(d).encode()) for d in documents]
    requirement: dict[str, Any] = {"name": "attested", "predicateType": statement["predicateType"]}
    artifact = case.get("artifact") or (case.get("artifacts") or [{}])[0]
    algorithm = case.get("digest_algorithm") or ("sha256" if "sha256" in artifact else "sha512")
    if case.get("dsse_check_subject") is False or not _artifact_digest(case, algorithm):
        subject = statement["subject"][0]["digest"]
        algorithm = "sha256" if "sha256" in subject else next(iter(subject))
        digests = [subject[algorithm]]
    else:
        artifacts = case.get("artifacts") or [case["artifact"]]
        digests = [a[algorithm] for a in artifacts]
    builder_ids = _builder_ids(case)
    spec = _slsa_spec(case)
    for variant, builder_id in enumerate(builder_ids):
        current = dict(requirement)
        if spec is not None or builder_id:
            slsa = dict(spec or {})
            if builder_id:
                slsa["builderId"] = builder_id
            current["slsa"] = slsa
            if "builderId" not in slsa:
                plan.refused_policy = current
                continue
        image = _policy(plan, variant, authorities, [current])
        plan.images += [f"{image}@{algorithm}:{d}" for d in digests]
    return plan


def _builder_ids(case: dict[str, Any]) -> list[str | None]:
    tested = case.get("builder_ids_tested")
    if tested:
        return list(tested)
    policy = case.get("policy") or {}
    return [policy.get("builder_id") or policy.get("builderID")]


def _slsa_spec(case: dict[str, Any]) -> dict[str, Any] | None:
    """The provenance checks upstream makes, or None when it makes none (sigstore, gh CLI)."""
    policy = case.get("policy") or {}
    if case["kind"] not in ("slsa-provenance", "npm-attestations") and "builder_id" not in policy:
        return None
    return {SLSA_KEYS[k]: v for k, v in policy.items() if k in SLSA_KEYS and v is not None}


def _plan_statement_vector(plan: Plan, harness_sign: Any) -> Plan:
    """Upstream validates the Statement: here ingest does, so a valid one is stored and an
    invalid one refused (its ``alg1`` subject names no digest an image could carry)."""
    text = (TESTDATA / plan.case["files"]["document"]).read_text()
    plan.uploads = [Upload(harness_sign(text.encode()).encode())]
    return plan


def _plan_descriptor_vector(plan: Plan, harness_sign: Any) -> Plan:
    """A ResourceDescriptor is judged where provenance carries one: as a resolved dependency
    of otherwise complete SLSA v1 provenance, under an ``slsa:`` requirement."""
    descriptor = json.loads((TESTDATA / plan.case["files"]["document"]).read_text())
    predicate = {
        "buildDefinition": {
            "buildType": "https://example.com/vector/v1",
            "externalParameters": {},
            "resolvedDependencies": [descriptor],
        },
        "runDetails": {"builder": {"id": "https://example.com/vector-builder"}},
    }
    return _plan_predicate_vector(plan, harness_sign, predicate)


def _plan_predicate_vector(
    plan: Plan, harness_sign: Any, predicate: dict[str, Any] | None = None
) -> Plan:
    if predicate is None:
        predicate = json.loads((TESTDATA / plan.case["files"]["document"]).read_text())
    digest = hashlib.sha256(plan.case["id"].encode()).hexdigest()
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "vector", "digest": {"sha256": digest}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": predicate,
    }
    plan.uploads = [Upload(harness_sign(statement).encode())]
    require = [
        {
            "name": "provenance",
            "predicateType": "https://slsa.dev/provenance/v1",
            "slsa": {"builderId": {"any": True}},
        }
    ]
    image = _policy(plan, 0, [{"name": "signer", "key": {"file": "keys/harness.pub"}}], require)
    plan.images.append(f"{image}@sha256:{digest}")
    return plan


def _plan_npm(plan: Plan) -> Plan:
    case = plan.case
    attestations = json.loads((TESTDATA / case["files"]["attestations"]).read_text())
    plan.uploads = [Upload(json.dumps(a["bundle"]).encode()) for a in attestations["attestations"]]
    provenance_type = next(
        a["predicateType"]
        for a in attestations["attestations"]
        if a["predicateType"] != NPM_PUBLISH
    )
    policy = case["policy"]
    spec = _slsa_spec(case) or {}
    if policy.get("builderID"):
        spec["builderId"] = policy["builderID"]
    provenance: dict[str, Any] = {
        "name": "provenance",
        "predicateType": provenance_type,
        "authorities": ["ci"],
        "slsa": spec,
    }
    # slsa-verifier compares the package name and version with the publish attestation's.
    checks = []
    if policy.get("pkgName"):
        checks.append(f'predicate.name == "{policy["pkgName"]}"')
    if policy.get("pkgVersion"):
        checks.append(f'predicate.version == "{policy["pkgVersion"]}"')
    publish: dict[str, Any] = {
        "name": "publish",
        "predicateType": NPM_PUBLISH,
        "authorities": ["npm"],
    }
    if checks:
        publish["conditions"] = [{"expression": " && ".join(checks), "message": "package"}]
    if "builderId" not in spec:
        plan.refused_policy = provenance
        return plan
    authorities = [
        {**_keyless(case, plan), "name": "ci"},
        {"name": "npm", "key": {"file": "keys/npm-registry.pub"}},
    ]
    image = _policy(plan, 0, authorities, [provenance, publish])
    plan.images.append(f"{image}@sha512:{_artifact_digest(case, 'sha512')}")
    return plan


def _plan_vsa(plan: Plan) -> Plan:
    case = plan.case
    documents = _documents(TESTDATA / case["files"]["attestation"])
    plan.uploads = [Upload(json.dumps(d).encode()) for d in documents]
    # The subject is a GCE image id, not a digest an image reference can carry: only the
    # upload is judged through the server; the VSA checks run in tests/policy.
    plan.unmapped.append("subjectDigests: a gce_image_id subject cannot be evaluated by image")
    return plan


def policy_yaml(plans: list[Plan]) -> str:
    documents = [p for plan in plans for p in plan.policies]
    documents.append(
        {
            "apiVersion": "provenant.dev/v1alpha1",
            "kind": "PolicyConfig",
            "spec": {"noMatch": "deny", "tagOnly": "deny"},
        }
    )
    return yaml.safe_dump_all(documents, sort_keys=False)
