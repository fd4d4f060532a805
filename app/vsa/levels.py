"""The SLSA build level a decision's evidence supports (``verifiedLevels``), and why.

Derived from the attestations the passing requirements used and the checks that passed, never
from what a provenance claims about itself:

- ``FAILED``: the policy did not pass.
- Build L0: the policy passed on evidence that is not SLSA provenance (signatures, SBOMs,
  layouts, other VSAs).
- Build L1: a passing requirement used SLSA provenance (verified at ingest: it is signed and
  names the artifact by digest).
- Build L2: that requirement also pinned the builder (``slsa.builderId`` exact or prefix, not
  ``{any: true}``). A passing ``slsa:`` requirement implies the builder was bound to a signer
  its authorities accept (``app.policy.slsa_signer``), so the pinned builder is the platform
  that signed, not text the tenant wrote.
- Build L3: the pinned builder is one slsa-verifier trusts as isolated (slsa-github-generator's
  reusable workflows) and one keyless signer that the requirement's authorities accept is that
  very workflow, name and release ref (the binding of ``app.policy.slsa_signer``, asked again
  here of each signer), so the tenant's steps could not sign it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from app.policy.facts import StoredAttestation
from app.policy.loader import CompiledRequirement
from app.policy.slsa import BYOB_BUILD_TYPE
from app.policy.slsa_signer import builder_signer_problem

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
    statement = attestation.statement or {}
    builder = builder_id(statement)
    if not builder.startswith(ISOLATED_BUILDERS) or build_type(statement) == BYOB_BUILD_TYPE:
        # A BYOB build is signed by the delegator, not by the builder it names.
        return 2
    # The engine knows some accepted signer is bound, not which: an attestation with several
    # signers must not borrow L3 from one the requirement did not accept.
    for signer in attestation.signers:
        if signer.kind != "keyless":
            continue
        if not any(a.mismatch(attestation, signer) is None for a in requirement.authorities):
            continue
        problem = builder_signer_problem(statement, builder, "", signer, any_builder=False)
        if problem is None:
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


def build_type(statement: Mapping[str, Any]) -> str:
    predicate = statement.get("predicate")
    if not isinstance(predicate, Mapping):
        return ""
    definition = predicate.get("buildDefinition")
    holder = definition if isinstance(definition, Mapping) else predicate  # v1 / v0.x
    value = holder.get("buildType")
    return value if isinstance(value, str) else ""
