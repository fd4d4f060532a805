"""The fields SLSA Provenance v1 requires (https://slsa.dev/spec/v1.0/provenance), checked as
in-toto/attestation's ``go/predicates/provenance/v1`` ``Validate()`` does.

Ingest stores any well-formed Statement (its predicate is the producer's business); a policy
that reads provenance through ``slsa:`` must not judge one that lacks what the spec requires,
and the reason names the missing field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# in-toto/attestation ResourceDescriptor.Validate: one of these must be set.
_DESCRIPTOR_FIELDS = ("name", "uri", "digest", "content")


def missing_v1_field(predicate: object) -> str | None:
    """The first required field ``predicate`` lacks, as a dotted path, or None when complete."""
    if not isinstance(predicate, Mapping):
        return "predicate"
    definition = predicate.get("buildDefinition")
    if not _present_object(definition):
        return "buildDefinition"
    assert isinstance(definition, Mapping)
    if not _present_text(definition.get("buildType")):
        return "buildDefinition.buildType"
    if not isinstance(definition.get("externalParameters"), Mapping):
        return "buildDefinition.externalParameters"
    problem = _descriptors(
        definition.get("resolvedDependencies"), "buildDefinition.resolvedDependencies"
    )
    if problem:
        return problem
    run = predicate.get("runDetails")
    if not _present_object(run):
        return "runDetails"
    assert isinstance(run, Mapping)
    builder = run.get("builder")
    if not _present_object(builder):
        return "runDetails.builder"
    assert isinstance(builder, Mapping)
    if not _present_text(builder.get("id")):
        return "runDetails.builder.id"
    problem = _descriptors(
        builder.get("builderDependencies"), "runDetails.builder.builderDependencies"
    )
    if problem:
        return problem
    return _descriptors(run.get("byproducts"), "runDetails.byproducts")


def _present_object(value: object) -> bool:
    # protobuf reads an empty message as unset, which is how upstream's vectors spell "missing".
    return isinstance(value, Mapping) and bool(value)


def _present_text(value: object) -> bool:
    return isinstance(value, str) and bool(value)


def _descriptors(value: Any, path: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, list):
        return path
    for index, item in enumerate(value):
        if not isinstance(item, Mapping) or not any(item.get(k) for k in _DESCRIPTOR_FIELDS):
            return f"{path}[{index}] (one of name, uri, digest or content)"
    return None
