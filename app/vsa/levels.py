"""The SLSA build level a decision's evidence supports (``verifiedLevels``), and why.

Derived from the attestations the passing requirements used and the checks that passed, never
from what a provenance claims about itself:

- ``FAILED``: the policy did not pass.
- Build L0: the policy passed on evidence that is not SLSA provenance (signatures, SBOMs,
  layouts, other VSAs).
- Build L1: a passing requirement used SLSA provenance (verified at ingest: it is signed and
  names the artifact by digest).
- Build L2: that requirement also pinned the builder (``slsa.builderId``): the policy author
  vouches for the build platform that signed it.
- Build L3: the pinned builder is one slsa-verifier trusts as isolated (the slsa-github-generator
  reusable workflows and delegators) and the provenance was signed keyless by that very
  workflow (certificate ``buildSignerURI`` names it), so the tenant's steps could not sign it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from app.policy.facts import StoredAttestation
from app.policy.loader import CompiledRequirement

PROVENANCE_TYPES = frozenset(
    {
        "https://slsa.dev/provenance/v0.1",
        "https://slsa.dev/provenance/v0.2",
        "https://slsa.dev/provenance/v1",
        "https://slsa.dev/provenance/v1.0?draft",
    }
)
ISOLATED_BUILDERS = "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/"
FAILED = "FAILED"


def verified_levels(
    passed: bool, used: Iterable[tuple[CompiledRequirement, StoredAttestation]]
) -> list[str]:
    """``used``: each passing requirement with each attestation it used."""
    if not passed:
        return [FAILED]
    level = 0
    for requirement, attestation in used:
        level = max(level, provenance_level(requirement, attestation))
    return [f"SLSA_BUILD_LEVEL_{level}"]


def provenance_level(requirement: CompiledRequirement, attestation: StoredAttestation) -> int:
    if (
        attestation.content_kind != "statement"
        or attestation.predicate_type not in PROVENANCE_TYPES
    ):
        return 0
    slsa = requirement.slsa
    if slsa is None or not (slsa.builder_id_exact or slsa.builder_id_prefix):
        return 1
    builder = _name(builder_id(attestation.statement or {}))
    if builder.startswith(ISOLATED_BUILDERS) and any(
        signer.kind == "keyless"
        and _name(signer.extensions.get("buildSignerURI") or signer.san or "") == builder
        for signer in attestation.signers
    ):
        return 3
    return 2


def builder_id(statement: Mapping[str, Any]) -> str:
    predicate = statement.get("predicate")
    if not isinstance(predicate, Mapping):
        return ""
    run = predicate.get("runDetails")
    holder = run if isinstance(run, Mapping) else predicate  # v1 / v0.2 and v0.1
    builder = holder.get("builder")
    value = builder.get("id") if isinstance(builder, Mapping) else None
    return value if isinstance(value, str) else ""


def _name(builder: str) -> str:
    return builder.split("@", 1)[0]
