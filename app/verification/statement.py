"""in-toto Statement parsing and validation, and the SLSA provenance facts policy matches on.

Validation follows the in-toto attestation reference (go/v1 ``Validate()``): the upstream test
vectors are the tests. Only the structure is judged here; whether a builder or source is
acceptable is policy, decided later against the facts extracted by ``slsa_facts``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from app.verification import strict_json
from app.verification.errors import (
    MALFORMED,
    STATEMENT_INVALID,
    SUBJECT_MISSING,
    VerificationError,
)
from app.verification.facts import Subject
from app.verification.source_uri import normalize_source_uri

STATEMENT_V01 = "https://in-toto.io/Statement/v0.1"
STATEMENT_V1 = "https://in-toto.io/Statement/v1"
STATEMENT_TYPES = (STATEMENT_V1, STATEMENT_V01)

SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
SLSA_PROVENANCE_V02 = "https://slsa.dev/provenance/v0.2"

# Digest sizes in bytes for the algorithms the spec fixes (digest_set.md); other algorithm
# names are allowed with any value. gitCommit is sha1 or sha256 (go/v1 accepts 20 here;
# the SHA-256 object format makes 32 real too).
_DIGEST_SIZES: dict[str, tuple[int, ...]] = {
    "md5": (16,),
    "sha1": (20,),
    "sha224": (28,),
    "sha512_224": (28,),
    "sha256": (32,),
    "sha512_256": (32,),
    "sha384": (48,),
    "sha512": (64,),
    "sha3_224": (28,),
    "sha3_256": (32,),
    "sha3_384": (48,),
    "sha3_512": (64,),
    "gitCommit": (20, 32),
    "dirHash": (32,),
}
_HEX = re.compile(r"[0-9a-fA-F]*")


@dataclass(frozen=True)
class ParsedStatement:
    statement: dict[str, Any]  # a copy with subject digests normalised to lowercase hex
    statement_type: str
    predicate_type: str
    subjects: list[Subject]


def _invalid(message: str) -> VerificationError:
    return VerificationError(STATEMENT_INVALID, message)


def parse_statement(payload: bytes | str | Mapping[str, Any]) -> ParsedStatement:
    """Parse and validate an in-toto Statement (v0.1 or v1).

    Raises VerificationError: ``subject_missing`` when there is no subject, otherwise
    ``statement_invalid`` naming the first problem found.
    """
    if isinstance(payload, Mapping):
        # The caller's mapping is not ours to normalise: copy what normalising changes (the
        # top level and each subject), never the predicate. A deep copy of a 10 MiB predicate
        # of small objects took 23 s of an upload's CPU (issue 11).
        statement = dict(payload)
        if isinstance(statement.get("subject"), list):
            statement["subject"] = [
                dict(rd) if isinstance(rd, dict) else rd for rd in statement["subject"]
            ]
    else:
        try:
            data = strict_json.loads(payload, "the payload")
        except VerificationError as exc:
            if exc.code != MALFORMED:
                raise
            raise _invalid(exc.message) from exc
        if not isinstance(data, dict):
            raise _invalid("payload is not a JSON object")
        statement = data  # parsed just now: nothing else holds it, so no copy

    statement_type = statement.get("_type")
    if statement_type not in STATEMENT_TYPES:
        raise _invalid(f"_type is {statement_type!r}; expected {STATEMENT_V1} (or {STATEMENT_V01})")
    subjects_raw = statement.get("subject")
    if not subjects_raw:
        raise VerificationError(SUBJECT_MISSING, "the statement names no subject")
    if not isinstance(subjects_raw, list):
        raise _invalid("subject must be a list")
    subjects = [_subject(rd, index) for index, rd in enumerate(subjects_raw)]

    predicate_type = statement.get("predicateType")
    if not isinstance(predicate_type, str) or not predicate_type:
        raise _invalid("predicateType is required")
    if "predicate" not in statement and statement_type == STATEMENT_V01:
        # v0.1: "unset is treated the same as set-but-empty".
        statement["predicate"] = {}
    predicate = statement.get("predicate")
    if not isinstance(predicate, dict):
        raise _invalid("predicate is required and must be a JSON object")
    # Predicates are not judged here: a signed statement with thin provenance (the sigstore
    # conformance bundles lack externalParameters) is still a true record of who signed
    # what. slsa_facts reports predicate problems for policy to weigh.
    return ParsedStatement(statement, statement_type, predicate_type, subjects)


def _subject(rd: object, index: int) -> Subject:
    where = f"subject[{index}]"
    validate_resource_descriptor(rd, where)
    assert isinstance(rd, dict)  # validated above; narrows the type
    digest = rd.get("digest")
    if not digest:
        # The Statement layer (unlike a bare descriptor) requires a digest: subjects are
        # matched to artifacts by digest, never by name, so this subject is as good as absent.
        raise VerificationError(SUBJECT_MISSING, f"{where} has no digest")
    rd["digest"] = normalise_digests(digest)
    name = rd.get("name")
    return Subject(name=name if isinstance(name, str) else "", digests=dict(rd["digest"]))


def validate_resource_descriptor(rd: object, where: str = "resource descriptor") -> None:
    """in-toto v1 ResourceDescriptor rules: one of name/uri/digest; digests well formed."""
    if not isinstance(rd, dict):
        raise _invalid(f"{where} must be an object")
    for text_field in ("name", "uri", "downloadLocation", "mediaType"):
        if text_field in rd and not isinstance(rd[text_field], str):
            raise _invalid(f"{where}.{text_field} must be a string")
    digest = rd.get("digest")
    if digest is not None and not isinstance(digest, dict):
        raise _invalid(f"{where}.digest must be an object of algorithm -> value")
    if not (rd.get("name") or rd.get("uri") or digest):
        raise _invalid(f"{where} needs at least one of name, uri or digest")
    for alg, value in (digest or {}).items():
        if not isinstance(value, str):
            raise _invalid(f"{where}.digest.{alg} must be a string")
        sizes = _DIGEST_SIZES.get(alg)
        if sizes is None:
            continue  # custom algorithms are allowed with any encoding
        if not _HEX.fullmatch(value) or len(value) % 2:
            raise _invalid(f"{where}.digest.{alg} is not hex")
        if len(value) // 2 not in sizes:
            raise _invalid(
                f"{where}.digest.{alg} has {len(value) // 2} bytes, expected "
                + " or ".join(str(s) for s in sizes)
            )


def normalise_digests(digest: Mapping[str, str]) -> dict[str, str]:
    """Lowercase hex digest values; leave custom non-hex values (e.g. image ids) alone."""
    return {alg: value.lower() if _HEX.fullmatch(value) else value for alg, value in digest.items()}


def validate_slsa_provenance_v1(predicate: object) -> None:
    """SLSA Build L1 required fields (go/predicates/provenance/v1 ``Validate()``)."""
    if not isinstance(predicate, dict):
        raise _invalid("SLSA provenance predicate must be an object")
    build = predicate.get("buildDefinition")
    # An empty object counts as missing, as in the reference: it carries nothing to check.
    if not isinstance(build, dict) or not build:
        raise _invalid("SLSA v1 provenance: buildDefinition is required")
    if not isinstance(build.get("buildType"), str) or not build["buildType"]:
        raise _invalid("SLSA v1 provenance: buildDefinition.buildType is required")
    if not isinstance(build.get("externalParameters"), dict):
        raise _invalid("SLSA v1 provenance: buildDefinition.externalParameters is required")
    _validate_descriptors(build.get("resolvedDependencies"), "resolvedDependencies")
    run = predicate.get("runDetails")
    if not isinstance(run, dict) or not run:
        raise _invalid("SLSA v1 provenance: runDetails is required")
    builder = run.get("builder")
    if not isinstance(builder, dict) or not builder:
        raise _invalid("SLSA v1 provenance: runDetails.builder is required")
    if not isinstance(builder.get("id"), str) or not builder["id"]:
        raise _invalid("SLSA v1 provenance: runDetails.builder.id is required")
    _validate_descriptors(builder.get("builderDependencies"), "builderDependencies")
    _validate_descriptors(run.get("byproducts"), "byproducts")


def _validate_descriptors(value: object, name: str) -> None:
    if value is None:
        return
    if not isinstance(value, list):
        raise _invalid(f"SLSA v1 provenance: {name} must be a list")
    for index, rd in enumerate(value):
        validate_resource_descriptor(rd, f"{name}[{index}]")


def validate_slsa_provenance_v02(predicate: object) -> None:
    """The v0.2 fields policy relies on: builder.id and buildType."""
    if not isinstance(predicate, dict):
        raise _invalid("SLSA provenance predicate must be an object")
    builder = predicate.get("builder")
    if not isinstance(builder, dict) or not isinstance(builder.get("id"), str) or not builder["id"]:
        raise _invalid("SLSA v0.2 provenance: builder.id is required")
    if not isinstance(predicate.get("buildType"), str) or not predicate["buildType"]:
        raise _invalid("SLSA v0.2 provenance: buildType is required")


# -- SLSA facts --------------------------------------------------------------------------------


def slsa_facts(statement: Mapping[str, Any]) -> dict[str, Any]:
    """What policy asks of SLSA provenance (v1 or v0.2), flattened; ``{}`` for other predicates.

    Keys: ``slsa_version`` ("v1" | "v0.2"), ``builder_id``, ``build_type``, ``invocation_id``,
    ``source_repository`` (URI without the ``git+`` prefix), ``source_ref``, ``source_commit``,
    ``entry_point`` (workflow path / configSource entryPoint), ``external_parameters``
    (v1 externalParameters, v0.2 invocation.parameters), ``internal_parameters`` (v1
    internalParameters, v0.2 invocation.environment) and ``resolved_dependencies``
    (v1 resolvedDependencies, v0.2 materials) as ``[{"uri", "name", "digests"}]``.
    ``problems`` lists what the predicate lacks for SLSA Build L1 (empty when complete).
    Absent values are None.
    """
    predicate = statement.get("predicate")
    if not isinstance(predicate, Mapping):
        return {}
    if statement.get("predicateType") == SLSA_PROVENANCE_V1:
        return {
            **_facts_v1(predicate),
            "problems": _problems(validate_slsa_provenance_v1, predicate),
        }
    if statement.get("predicateType") == SLSA_PROVENANCE_V02:
        return {
            **_facts_v02(predicate),
            "problems": _problems(validate_slsa_provenance_v02, predicate),
        }
    return {}


def _problems(validate: Callable[[object], None], predicate: object) -> list[str]:
    try:
        validate(predicate)
    except VerificationError as exc:
        return [exc.message]
    return []


def _facts_v1(predicate: Mapping[str, Any]) -> dict[str, Any]:
    build = _obj(predicate.get("buildDefinition"))
    run = _obj(predicate.get("runDetails"))
    external = _obj(build.get("externalParameters"))
    dependencies = _dependencies(build.get("resolvedDependencies"))
    workflow = _obj(external.get("workflow"))
    repository = _str(workflow.get("repository"))
    ref = _str(workflow.get("ref"))
    commit = None
    # GitHub build types name the source in externalParameters.workflow and pin its commit
    # in the resolved dependency for that repository; other builders (BYOB delegators,
    # Bazel) only list the source as the first git dependency.
    source = _source_dependency(dependencies, repository)
    if source is not None:
        dep_repository, dep_ref = _split_git_uri(source["uri"])
        repository = repository or dep_repository
        ref = ref or dep_ref
        commit = _commit(source["digests"])
    return {
        "slsa_version": "v1",
        "builder_id": _str(_obj(run.get("builder")).get("id")),
        "build_type": _str(build.get("buildType")),
        "invocation_id": _str(_obj(run.get("metadata")).get("invocationId")),
        "source_repository": _normal_source(repository),
        "source_ref": ref,
        "source_commit": commit,
        "entry_point": _str(workflow.get("path")),
        "external_parameters": dict(external),
        "internal_parameters": _obj(build.get("internalParameters")),
        "resolved_dependencies": dependencies,
    }


def _facts_v02(predicate: Mapping[str, Any]) -> dict[str, Any]:
    invocation = _obj(predicate.get("invocation"))
    config = _obj(invocation.get("configSource"))
    dependencies = _dependencies(predicate.get("materials"))
    repository, ref = _split_git_uri(_str(config.get("uri")))
    commit = _commit(_obj(config.get("digest")))
    if repository is None and dependencies:
        # Without a configSource the first material is, by convention, the source.
        repository, ref = _split_git_uri(dependencies[0]["uri"])
        commit = _commit(dependencies[0]["digests"])
    return {
        "slsa_version": "v0.2",
        "builder_id": _str(_obj(predicate.get("builder")).get("id")),
        "build_type": _str(predicate.get("buildType")),
        "invocation_id": _str(_obj(predicate.get("metadata")).get("buildInvocationId")),
        "source_repository": _normal_source(repository),
        "source_ref": ref,
        "source_commit": commit,
        "entry_point": _str(config.get("entryPoint")),
        "external_parameters": _obj(invocation.get("parameters")),
        "internal_parameters": _obj(invocation.get("environment")),
        "resolved_dependencies": dependencies,
    }


def _obj(value: object) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _dependencies(value: object) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        return []
    deps = []
    for rd in value:
        if isinstance(rd, Mapping):
            digest = rd.get("digest")
            digests = (
                normalise_digests({k: v for k, v in digest.items() if isinstance(v, str)})
                if isinstance(digest, Mapping)
                else {}
            )
            deps.append(
                {"uri": _str(rd.get("uri")), "name": _str(rd.get("name")), "digests": digests}
            )
    return deps


def _source_dependency(
    dependencies: list[dict[str, Any]], repository: str | None
) -> dict[str, Any] | None:
    git = [d for d in dependencies if d["uri"] and d["uri"].startswith("git+")]
    if repository:
        wanted = _strip_git_prefix(repository)
        for dep in git:
            if _split_git_uri(dep["uri"])[0] == wanted:
                return dep
        return None
    return git[0] if git else None


def _normal_source(uri: str | None) -> str | None:
    return normalize_source_uri(uri) if uri else uri


def _strip_git_prefix(uri: str | None) -> str | None:
    return uri[len("git+") :] if uri and uri.startswith("git+") else uri


def _split_git_uri(uri: str | None) -> tuple[str | None, str | None]:
    """``git+https://github.com/o/r@refs/heads/main`` -> (``https://github.com/o/r``, ref)."""
    if not uri:
        return None, None
    uri = _strip_git_prefix(uri) or uri
    scheme_end = uri.find("://") + 3 if "://" in uri else 0
    at = uri.rfind("@")
    if at > uri.find("/", scheme_end):  # an "@" after the host separates the ref
        return uri[:at], uri[at + 1 :] or None
    return uri, None


def _commit(digests: Mapping[str, str]) -> str | None:
    for alg in ("gitCommit", "sha1", "sha256"):
        if digests.get(alg):
            return digests[alg].lower()
    return None
