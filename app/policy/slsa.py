"""SLSA provenance and VSA checks at slsa-verifier parity, judged on an already-verified Statement.

Signatures, certificates and the transparency log were checked once at ingest; here only the
policy part of ``slsa-verifier verify-artifact`` remains: builder id, source repository, branch,
tag, versioned tag and workflow inputs (``verifiers/internal/gha/provenance.go``), plus the
expected values of ``slsa-verifier verify-vsa``. Failures carry slsa-verifier's error names in
``details["error"]`` so a reader can line them up with upstream's test expectations.

Where slsa-verifier is deliberately followed although it may surprise:

- ``builderId: {exact: NAME}`` compares names; a version is compared only when the expected id
  has one, and ``NAME@v1.2.3`` accepts a provenance ``NAME@refs/tags/v1.2.3``
  (``TrustedBuilderID.MatchesLoose(allowRef=true)``). The reverse is not accepted.
- A BYOB (delegator) builder must be referenced at a release tag ``refs/tags/vX.Y.Z``.
- ``sourceVersionedTag`` follows ``utils.VerifyVersionedTag``: same major, then minor and patch
  only where the expected tag names them, compared as the text between dots (so a prerelease
  suffix on the patch must match, build metadata on the provenance tag is ignored).
- The build's ref must be a tag for tag checks and a branch (or a tag pushed from that branch)
  for branch checks; anything else is ``ErrorInvalidRef``, not a mismatch.

Where this module goes beyond slsa-verifier (documented in the failure reasons too):

- Any git host is accepted in ``sourceUri`` (slsa-verifier's GitHub verifier insists on
  github.com); the comparison is still exact.
- ``builderId: {prefix: P}`` compares P with the builder name (slsa-verifier's
  ``verifyBuilderIDPathPrefix``), or with the full ``name@ref`` when P itself contains ``@``,
  so a policy can pin a release line such as ``...@refs/tags/v2.``.
- Workflow inputs that are not strings (booleans of ``inputs`` in newer build types) are
  compared in their JSON spelling, so ``dry-run: "false"`` matches ``false``.
- For a tag build, the branch of every builder type (BYOB v1 included) is the branch the tag
  was pushed from (``base_ref``), as slsa-verifier does for all other builders.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.policy.results import CheckResult

PROVENANCE_V01 = "https://slsa.dev/provenance/v0.1"
PROVENANCE_V02 = "https://slsa.dev/provenance/v0.2"
PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
PROVENANCE_V1_DRAFT = "https://slsa.dev/provenance/v1.0?draft"
VSA_V02 = "https://slsa.dev/verification_summary/v0.2"
VSA_V1 = "https://slsa.dev/verification_summary/v1"

BYOB_BUILD_TYPE = "https://github.com/slsa-framework/slsa-github-generator/delegator-generic@v0"
NPM_CLI_BUILD_TYPE_V1 = "https://github.com/npm/cli/gha@v1"
# npm's own v0.2 provenance build types: .../gha@v1 (before GA), .../gha/v2.
NPM_CLI_BUILD_TYPE_PREFIX = "https://github.com/npm/cli/gha"
# slsa-verifier's npm verifier treats these two spellings of the GitHub-hosted runner as one.
_GITHUB_RUNNER = "https://github.com/actions/runner"
_GITHUB_HOSTED_RUNNER = "https://github.com/actions/runner/github-hosted"
# JReleaser's BYOB builder publishes per-language tags (vX.Y.Z-java); slsa-verifier allows them.
_JRELEASER_REPOSITORY = "https://github.com/jreleaser/release-action/.github/workflows"
_JRELEASER_LANGUAGES = {"-java"}

_SPEC_KEYS = {
    "builderId",
    "sourceUri",
    "sourceBranch",
    "sourceTag",
    "sourceVersionedTag",
    "workflowInputs",
    "verifierId",
    "resourceUri",
    "verifiedLevels",
}


@dataclass(frozen=True)
class SlsaRequirement:
    builder_id_exact: str | None = None
    builder_id_prefix: str | None = None
    # ``builderId: {any: true}``: the policy states that any builder will do (the signer's
    # identity is pinned by the authorities instead); never the silent default.
    builder_id_any: bool = False
    source_uri: str | None = None
    source_branch: str | None = None
    source_tag: str | None = None
    source_versioned_tag: str | None = None
    workflow_inputs: dict[str, str] = field(default_factory=dict)
    # Verification summaries (VSA) carry no builder or source; slsa-verifier verify-vsa checks
    # these instead (the subject digest is the engine's business).
    verifier_id: str | None = None
    resource_uri: str | None = None
    verified_levels: tuple[str, ...] = ()

    def provenance_fields(self) -> list[str]:
        """YAML names of the provenance checks this requirement sets."""
        names = {
            "builderId": self.builder_id_exact or self.builder_id_prefix or self.builder_id_any,
            "sourceUri": self.source_uri,
            "sourceBranch": self.source_branch,
            "sourceTag": self.source_tag,
            "sourceVersionedTag": self.source_versioned_tag,
            "workflowInputs": self.workflow_inputs,
        }
        return [name for name, value in names.items() if value]

    def vsa_fields(self) -> list[str]:
        names = {
            "verifierId": self.verifier_id,
            "resourceUri": self.resource_uri,
            "verifiedLevels": self.verified_levels,
        }
        return [name for name, value in names.items() if value]


# -- parsing ---------------------------------------------------------------------------------


def parse_slsa_requirement(spec: dict[str, Any]) -> SlsaRequirement:
    """The YAML ``slsa:`` mapping as a requirement; ValueError names the offending key."""
    if not isinstance(spec, Mapping):
        raise ValueError("slsa: must be a mapping of checks")
    unknown = sorted(set(spec) - _SPEC_KEYS)
    if unknown:
        raise ValueError(
            f"slsa.{unknown[0]}: unknown check (known: {', '.join(sorted(_SPEC_KEYS))})"
        )
    exact, prefix, any_builder = _parse_builder_id(spec.get("builderId"))
    source_uri = _optional_text(spec, "sourceUri")
    if source_uri is not None:
        _, ref = split_git_uri(normalize_git_uri(source_uri))
        if ref:
            # The ref part could never equal the repository part of a provenance URI.
            raise ValueError(
                f"slsa.sourceUri: {source_uri!r} names a ref ({ref}); give the repository "
                "only and check the ref with sourceBranch, sourceTag or sourceVersionedTag"
            )
    branch = _optional_text(spec, "sourceBranch")
    if branch is not None:
        branch = branch.removeprefix("refs/heads/")
    tag = _optional_text(spec, "sourceTag")
    if tag is not None:
        tag = tag.removeprefix("refs/tags/")
    versioned = _optional_text(spec, "sourceVersionedTag")
    if versioned is not None and not semver_is_valid(versioned):
        raise ValueError(
            f"slsa.sourceVersionedTag: {versioned!r} is not a semantic version such as v1, "
            "v1.2 or v1.2.3"
        )
    inputs = _parse_workflow_inputs(spec.get("workflowInputs"))
    levels = _parse_verified_levels(spec.get("verifiedLevels"))
    requirement = SlsaRequirement(
        builder_id_exact=exact,
        builder_id_prefix=prefix,
        builder_id_any=any_builder,
        source_uri=source_uri,
        source_branch=branch,
        source_tag=tag,
        source_versioned_tag=versioned,
        workflow_inputs=inputs,
        verifier_id=_optional_text(spec, "verifierId"),
        resource_uri=_optional_text(spec, "resourceUri"),
        verified_levels=levels,
    )
    if not requirement.provenance_fields() and not requirement.vsa_fields():
        # An empty block would pass every provenance, which is never what its author meant.
        raise ValueError("slsa: names no check; set builderId, sourceUri, ... or remove it")
    if not requirement.vsa_fields() and not (exact or prefix or any_builder):
        # slsa-verifier refuses to verify GitHub attestations and npm provenance without an
        # expected builder: provenance from an unnamed builder proves nothing about the build.
        raise ValueError(
            "slsa.builderId: required for provenance checks; name the builder "
            "(builderId: ID, {exact: ID} or {prefix: ID}) or state that any builder will do "
            "with builderId: {any: true}"
        )
    if requirement.provenance_fields() and requirement.vsa_fields():
        raise ValueError(
            f"slsa.{requirement.vsa_fields()[0]}: verification summary checks cannot be combined "
            f"with provenance checks ({', '.join(requirement.provenance_fields())}); "
            "a statement is either SLSA provenance or a VSA"
        )
    return requirement


def _optional_text(spec: Mapping[str, Any], key: str) -> str | None:
    value = spec.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"slsa.{key}: must be a non-empty string, got {value!r}")
    return value.strip()


def _parse_builder_id(value: object) -> tuple[str | None, str | None, bool]:
    """(exact, prefix, any) of ``builderId``."""
    if value is None:
        return None, None, False
    if isinstance(value, str):
        value = {"exact": value}
    if not isinstance(value, Mapping):
        raise ValueError(
            "slsa.builderId: must be a string or {exact: ID}, {prefix: ID} or {any: true}"
        )
    unknown = sorted(set(value) - {"exact", "prefix", "any"})
    if unknown:
        raise ValueError(f"slsa.builderId.{unknown[0]}: unknown key (use exact, prefix or any)")
    if len(value) != 1:
        raise ValueError("slsa.builderId: give exactly one of exact, prefix or any")
    kind, text = next(iter(value.items()))
    if kind == "any":
        if text is not True:
            raise ValueError(
                f"slsa.builderId.any: must be true (omit builderId's other keys), got {text!r}"
            )
        return None, None, True
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"slsa.builderId.{kind}: must be a non-empty string, got {text!r}")
    text = text.strip()
    if kind == "exact":
        try:
            parse_builder_id(text)
        except ValueError as exc:
            raise ValueError(f"slsa.builderId.exact: {exc}") from exc
        return text, None, False
    return None, text, False


def _parse_workflow_inputs(value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not value:
        raise ValueError("slsa.workflowInputs: must be a non-empty mapping of input name to value")
    inputs = {}
    for name, expected in value.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"slsa.workflowInputs: input name {name!r} must be a string")
        if isinstance(expected, (dict, list)) or expected is None:
            raise ValueError(f"slsa.workflowInputs.{name}: must be a scalar value")
        # YAML turns `dry-run: false` into a bool; inputs are compared as text.
        inputs[name] = _input_text(expected)
    return inputs


def _parse_verified_levels(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise ValueError("slsa.verifiedLevels: must be a non-empty list of levels")
    levels = []
    for level in value:
        if not isinstance(level, str) or not level:
            raise ValueError(f"slsa.verifiedLevels: {level!r} is not a level name")
        if level.startswith("SLSA_") and _slsa_track_level(level) is None:
            raise ValueError(
                f"slsa.verifiedLevels: {level!r} is not of the form SLSA_<TRACK>_LEVEL_<n>"
            )
        levels.append(level)
    return tuple(levels)


# -- slsa-verifier building blocks ------------------------------------------------------------


def parse_builder_id(builder_id: str) -> tuple[str, str]:
    """(name, version) as slsa-verifier's ``utils.ParseBuilderID``; ValueError when malformed."""
    parts = builder_id.split("@")
    if len(parts) == 2:
        if not parts[1]:
            raise ValueError(f"builder id {builder_id!r} has an empty version after '@'")
        return parts[0], parts[1]
    if len(parts) == 1:
        return parts[0], ""
    raise ValueError(f"builder id {builder_id!r} has more than one '@'")


def normalize_git_uri(uri: str) -> str:
    """``utils.NormalizeGitURI``: github.com/o/r -> git+https://github.com/o/r."""
    if uri.startswith("git+"):
        return uri
    if "://" not in uri:
        return "git+https://" + uri
    return "git+" + uri


def split_git_uri(uri: str) -> tuple[str, str]:
    """``utils.ParseGitURIAndRef`` without the git+ check: (uri, ref) split at the first '@'."""
    base, _, ref = uri.partition("@")
    return base, ref


def parse_git_ref(ref: str) -> tuple[str, str]:
    """``utils.ParseGitRef``: refs/tags/v1 -> ("tags", "v1"); anything else -> ("", ref)."""
    parts = ref.split("/", 2)
    if len(parts) < 3 or parts[0] != "refs":
        return "", ref
    return parts[1], parts[2]


class InvalidRefError(ValueError):
    """A ref that is not of the kind a check needs (slsa-verifier's ErrorInvalidRef)."""


def ref_name(kind: str, ref: str) -> str:
    """``utils.ValidateGitRef``: the tag or branch name of ``ref``, or InvalidRefError."""
    found_kind, name = parse_git_ref(ref)
    if found_kind != kind:
        described = f"ref {ref!r}" if ref else "an empty ref"
        raise InvalidRefError(f"{described} is not a {_REF_WORDS.get(kind, kind)} ref")
    if not name:
        raise InvalidRefError(f"ref {ref!r} has an empty name")
    return name


_REF_WORDS = {"tags": "tag (refs/tags/...)", "heads": "branch (refs/heads/...)"}


def _describe_ref(ref: str, kind: str) -> str:
    if not ref:
        return "no recorded ref"
    return f"{kind} {ref}" if kind in ("branch", "tag") else f"ref {ref}"


# -- semver (a port of golang.org/x/mod/semver, which slsa-verifier uses) --------------------


@dataclass(frozen=True)
class _Semver:
    major: str
    minor: str
    patch: str
    short: str
    prerelease: str
    build: str


def _parse_int(text: str) -> tuple[str, str] | None:
    end = 0
    while end < len(text) and text[end].isascii() and text[end].isdigit():
        end += 1
    if end == 0 or (text[0] == "0" and end != 1):
        return None
    return text[:end], text[end:]


def _is_ident_char(char: str) -> bool:
    return char.isascii() and (char.isalnum() or char == "-")


def _is_bad_num(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) > 1 and text[0] == "0"


def _parse_prerelease(text: str) -> tuple[str, str] | None:
    if not text.startswith("-"):
        return None
    index = start = 1
    while index < len(text) and text[index] != "+":
        char = text[index]
        if not _is_ident_char(char) and char != ".":
            return None
        if char == ".":
            if start == index or _is_bad_num(text[start:index]):
                return None
            start = index + 1
        index += 1
    if start == index or _is_bad_num(text[start:index]):
        return None
    return text[:index], text[index:]


def _parse_build(text: str) -> tuple[str, str] | None:
    if not text.startswith("+"):
        return None
    index = start = 1
    while index < len(text):
        char = text[index]
        if not _is_ident_char(char) and char != ".":
            return None
        if char == ".":
            if start == index:
                return None
            start = index + 1
        index += 1
    if start == index:
        return None
    return text, ""


def _parse_semver(version: str) -> _Semver | None:
    if not version.startswith("v"):
        return None
    parsed = _parse_int(version[1:])
    if parsed is None:
        return None
    major, rest = parsed
    if not rest:
        return _Semver(major, "0", "0", ".0.0", "", "")
    if not rest.startswith("."):
        return None
    parsed = _parse_int(rest[1:])
    if parsed is None:
        return None
    minor, rest = parsed
    if not rest:
        return _Semver(major, minor, "0", ".0", "", "")
    if not rest.startswith("."):
        return None
    parsed = _parse_int(rest[1:])
    if parsed is None:
        return None
    patch, rest = parsed
    prerelease = build = ""
    if rest.startswith("-"):
        found = _parse_prerelease(rest)
        if found is None:
            return None
        prerelease, rest = found
    if rest.startswith("+"):
        found = _parse_build(rest)
        if found is None:
            return None
        build, rest = found
    if rest:
        return None
    return _Semver(major, minor, patch, "", prerelease, build)


def semver_is_valid(version: str) -> bool:
    return _parse_semver(version) is not None


def semver_canonical(version: str) -> str:
    """``semver.Canonical``: v1 -> v1.0.0, v1.2.3+meta -> v1.2.3, invalid -> ""."""
    parsed = _parse_semver(version)
    if parsed is None:
        return ""
    if parsed.build:
        return version[: len(version) - len(parsed.build)]
    return version + parsed.short


def semver_build(version: str) -> str:
    parsed = _parse_semver(version)
    return parsed.build if parsed else ""


def verify_versioned_tag(provenance_tag: str, expected_tag: str) -> str | None:
    """``utils.VerifyVersionedTag``: None on a match, else what differs, in words."""
    expected = _parse_semver(expected_tag)
    if expected is None:
        return f"expected versioned tag {expected_tag!r} is not a semantic version"
    canonical = semver_canonical(provenance_tag)
    found = _parse_semver(canonical)
    if found is None:
        return f"tag {provenance_tag!r} is not a semantic version"
    expected_major, major = "v" + expected.major, "v" + found.major
    if major != expected_major:
        return f"major version expected {expected_major}, got {major}"
    expected_parts = expected_tag.split(".")
    parts = canonical.split(".")
    if len(expected_parts) > 1 and expected_parts[1] != parts[1]:
        return f"minor version expected {expected_parts[1]}, got {parts[1]}"
    if len(expected_parts) > 2:
        expected_patch = expected_parts[2].removesuffix(semver_build(expected_tag))
        patch = parts[2].removesuffix(semver_build(canonical))
        if expected_patch != patch:
            return f"patch version expected {expected_patch}, got {patch}"
    return None


def is_valid_builder_tag(ref: str) -> bool:
    """``utils.IsValidBuilderTag``: refs/tags/vX.Y.Z with no prerelease or build."""
    try:
        pin = ref_name("tags", ref)
    except InvalidRefError:
        return False
    parsed = _parse_semver(pin)
    return (
        parsed is not None
        and len(pin.split(".")) == 3
        and not parsed.prerelease
        and not parsed.build
    )


def _is_valid_jreleaser_tag(ref: str) -> bool:
    try:
        pin = ref_name("tags", ref)
    except InvalidRefError:
        return False
    parsed = _parse_semver(pin)
    return (
        parsed is not None
        and len(pin.split(".")) == 3
        and parsed.prerelease in _JRELEASER_LANGUAGES
        and not parsed.build
    )


# -- what a provenance says -------------------------------------------------------------------


class ProvenanceFormatError(ValueError):
    """The statement is not SLSA provenance this module can read."""


@dataclass
class _Provenance:
    """The fields slsa-verifier reads, whatever the predicate version and build type."""

    predicate_type: str
    builder_id: str
    build_type: str
    source_uri: str  # materials[0] / resolvedDependencies[0] (git+...@ref), "" when absent
    trigger_uri: str  # configSource / GITHUB_WORKFLOW_REF / workflow{repository, ref}, or ""
    env: dict[str, Any]  # github_* context, keys lower-cased
    external: dict[str, Any]

    @property
    def is_byob(self) -> bool:
        return self.build_type == BYOB_BUILD_TYPE

    def build_ref(self) -> tuple[str, str]:
        """(ref, where it came from) of the build: the ref branch and tag checks judge."""
        if self.is_byob and self.source_uri:
            # BYOB builders may build another ref than the one that triggered them;
            # slsa-verifier judges the source they built.
            _, ref = split_git_uri(self.source_uri)
            if ref:
                return ref, "the source URI"
        github_ref = self.env.get("github_ref")
        if isinstance(github_ref, str) and github_ref:
            return github_ref, "GITHUB_REF"
        workflow = self.external.get("workflow")
        if isinstance(workflow, Mapping) and isinstance(workflow.get("ref"), str):
            return workflow["ref"], "externalParameters.workflow.ref"
        if self.trigger_uri:
            _, ref = split_git_uri(self.trigger_uri)
            if ref:
                return ref, "the trigger URI"
        return "", "nowhere (the provenance records no ref)"

    def ref_type(self, ref: str, origin: str) -> str:
        declared = self.env.get("github_ref_type")
        if origin == "GITHUB_REF" and isinstance(declared, str) and declared:
            return declared
        kind, _ = parse_git_ref(ref)
        return {"tags": "tag", "heads": "branch"}.get(kind, kind)

    def tag(self) -> str:
        """The tag the build ran for; InvalidRefError when it did not run for a tag."""
        ref, origin = self.build_ref()
        kind = self.ref_type(ref, origin)
        if kind != "tag":
            raise InvalidRefError(
                f"the build ran for {_describe_ref(ref, kind)} (from {origin}), not for a tag"
            )
        return ref_name("tags", ref)

    def branch(self) -> str:
        """The branch the build ran for, or the branch a tag was pushed from."""
        ref, origin = self.build_ref()
        kind = self.ref_type(ref, origin)
        if kind == "branch":
            return ref_name("heads", ref)
        if kind == "tag":
            base = self._branch_of_tag()
            if not base:
                raise InvalidRefError(
                    f"the build ran for tag {ref} and records no branch it was pushed from"
                )
            return ref_name("heads", base)
        raise InvalidRefError(
            f"the build ran for {_describe_ref(ref, kind)} (from {origin}), not for a branch"
        )

    def _branch_of_tag(self) -> str:
        """``common.getBranchForTag``: the branch a tag build came from, "" when unknown."""
        base_ref = self.env.get("github_base_ref")
        if isinstance(base_ref, str) and base_ref:
            return base_ref
        payload = self.env.get("github_event_payload")
        if not isinstance(payload, Mapping):
            return ""
        event = self.env.get("github_event_name")
        if event == "push":
            value = payload.get("base_ref")
            return value if isinstance(value, str) else ""
        if event == "release":
            release = payload.get("release")
            target = release.get("target_commitish") if isinstance(release, Mapping) else None
            if isinstance(target, str):
                return "refs/heads/" + target
        return ""

    def workflow_inputs(self) -> tuple[dict[str, Any] | None, str]:
        """(inputs, problem): the workflow_dispatch inputs, or why there are none."""
        event = self.env.get("github_event_name")
        if event != "workflow_dispatch":
            found = f"{event!r}" if event else "no recorded trigger"
            return None, f"inputs exist only for a workflow_dispatch trigger, found {found}"
        payload = self.env.get("github_event_payload")
        if isinstance(payload, Mapping) and isinstance(payload.get("inputs"), Mapping):
            return dict(payload["inputs"]), ""
        inputs = self.external.get("inputs")
        if isinstance(inputs, Mapping):
            return dict(inputs), ""
        return None, "the provenance records no workflow inputs"


def _github_env(*sources: object) -> dict[str, Any]:
    env: dict[str, Any] = {}
    for source in sources:
        if not isinstance(source, Mapping):
            continue
        for key, value in source.items():
            if not isinstance(key, str):
                continue
            lowered = key.lower()
            if lowered.startswith("github_"):
                env.setdefault(lowered, value)
            elif lowered == "github" and isinstance(value, Mapping):
                # The GitHub workflow build types nest the context: {"github": {"event_name"}}.
                for inner, inner_value in value.items():
                    if isinstance(inner, str):
                        env.setdefault("github_" + inner.lower(), inner_value)
    return env


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _first_uri(items: object) -> str:
    if isinstance(items, list) and items and isinstance(items[0], Mapping):
        return _text(items[0].get("uri"))
    return ""


def read_provenance(statement: Mapping[str, Any]) -> _Provenance:
    predicate_type = _text(statement.get("predicateType"))
    predicate = statement.get("predicate")
    if not isinstance(predicate, Mapping):
        raise ProvenanceFormatError("the statement has no predicate object")
    if predicate_type in (PROVENANCE_V02, PROVENANCE_V01):
        return _read_v0(predicate_type, predicate)
    if predicate_type.startswith("https://slsa.dev/provenance/v1"):
        return _read_v1(predicate_type, predicate)
    raise ProvenanceFormatError(
        f"predicate type {predicate_type or '(none)'} is not SLSA provenance (v0.1, v0.2 or v1)"
    )


def _read_v0(predicate_type: str, predicate: Mapping[str, Any]) -> _Provenance:
    builder = predicate.get("builder")
    builder_id = _text(builder.get("id")) if isinstance(builder, Mapping) else ""
    if predicate_type == PROVENANCE_V01:
        recipe = predicate.get("recipe")
        recipe = recipe if isinstance(recipe, Mapping) else {}
        return _Provenance(
            predicate_type=predicate_type,
            builder_id=builder_id,
            build_type=_text(recipe.get("type")),
            source_uri=_first_uri(predicate.get("materials")),
            trigger_uri="",
            env=_github_env(recipe.get("environment")),
            external={},
        )
    invocation = predicate.get("invocation")
    invocation = invocation if isinstance(invocation, Mapping) else {}
    config = invocation.get("configSource")
    trigger = _text(config.get("uri")) if isinstance(config, Mapping) else ""
    return _Provenance(
        predicate_type=predicate_type,
        builder_id=builder_id,
        build_type=_text(predicate.get("buildType")),
        source_uri=_first_uri(predicate.get("materials")),
        trigger_uri=trigger,
        env=_github_env(invocation.get("environment")),
        external={},
    )


def _read_v1(predicate_type: str, predicate: Mapping[str, Any]) -> _Provenance:
    definition = predicate.get("buildDefinition")
    definition = definition if isinstance(definition, Mapping) else {}
    run = predicate.get("runDetails")
    run = run if isinstance(run, Mapping) else {}
    builder = run.get("builder")
    builder_id = _text(builder.get("id")) if isinstance(builder, Mapping) else ""
    external = definition.get("externalParameters")
    external = dict(external) if isinstance(external, Mapping) else {}
    # v1.0 release candidates called internalParameters systemParameters.
    internal = definition.get("internalParameters", definition.get("systemParameters"))
    source = _first_uri(definition.get("resolvedDependencies"))
    if not source:
        declared = external.get("source")
        source = _text(declared.get("uri")) if isinstance(declared, Mapping) else _text(declared)
    return _Provenance(
        predicate_type=predicate_type,
        builder_id=builder_id,
        build_type=_text(definition.get("buildType")),
        source_uri=source,
        trigger_uri=_v1_trigger(internal, external),
        env=_github_env(internal),
        external=external,
    )


def _v1_trigger(internal: object, external: Mapping[str, Any]) -> str:
    workflow = external.get("workflow")
    if isinstance(workflow, Mapping):
        repository, ref = workflow.get("repository"), workflow.get("ref")
        if isinstance(repository, str) and isinstance(ref, str) and repository and ref:
            return f"{normalize_git_uri(repository)}@{ref}"
    if isinstance(internal, Mapping):
        workflow_ref = internal.get("GITHUB_WORKFLOW_REF")
        if isinstance(workflow_ref, str):
            # owner/repo/.github/workflows/x.yml@ref -> git+https://github.com/owner/repo@ref
            parts = workflow_ref.split("@")
            repo_path = parts[0].split("/")
            if len(parts) == 2 and len(repo_path) >= 2:
                return f"git+https://github.com/{'/'.join(repo_path[:2])}@{parts[1]}"
    return ""


# -- the checks -------------------------------------------------------------------------------


@dataclass
class _Outcome:
    name: str
    passed: bool
    reason: str
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "check": self.name,
            "passed": self.passed,
            "reason": self.reason,
            "error": self.error,
        }


def _equal(check: str, found: str | None, expected: str, error: str) -> _Outcome:
    """An exact comparison, explained either way (VSA verifier and resource)."""
    if found == expected:
        return _Outcome(check, True, f"{check} {found} matches")
    return _Outcome(check, False, f"{check} {found or '(none)'} is not {expected}", error)


def check_slsa(req: SlsaRequirement, statement: dict[str, Any]) -> CheckResult:
    """Judge a verified in-toto Statement (SLSA provenance or VSA) against ``req``.

    Every check runs, so one answer lists every difference; ``details["error"]`` is
    slsa-verifier's name for the first failure in its own order (builder, source, branch, tag,
    versioned tag, workflow inputs).
    """
    if not isinstance(statement, Mapping):
        return _result(
            [
                _Outcome(
                    "predicate", False, "no in-toto statement to judge", "ErrorInvalidDssePayload"
                )
            ],
            {},
        )
    predicate_type = _text(statement.get("predicateType"))
    if predicate_type in (VSA_V1, VSA_V02):
        return _check_vsa(req, predicate_type, statement)
    if req.vsa_fields():
        return _result(
            [
                _Outcome(
                    "predicate",
                    False,
                    f"{', '.join(req.vsa_fields())} judge a verification summary (VSA), but this "
                    f"statement is {predicate_type or 'untyped'}",
                    "ErrorInvalidDssePayload",
                )
            ],
            {},
        )
    try:
        prov = read_provenance(statement)
    except ProvenanceFormatError as exc:
        return _result([_Outcome("predicate", False, str(exc), "ErrorInvalidDssePayload")], {})
    if prov.predicate_type == PROVENANCE_V1:
        # Ingest stores any well-formed Statement; a requirement reading provenance must not
        # judge one that lacks what the SLSA v1 spec requires.
        from app.verification.errors import VerificationError
        from app.verification.statement import validate_slsa_provenance_v1

        try:
            validate_slsa_provenance_v1(statement.get("predicate"))
        except VerificationError as exc:
            reason = f"invalid provenance: {exc.message}"
            return _result([_Outcome("predicate", False, reason, "ErrorInvalidDssePayload")], {})
    details: dict[str, Any] = {
        "predicate_type": prov.predicate_type,
        "builder_id": prov.builder_id,
        "build_type": prov.build_type,
        "source_uri": prov.source_uri,
        "trigger_uri": prov.trigger_uri,
    }
    outcomes: list[_Outcome] = []
    if req.builder_id_exact or req.builder_id_prefix or req.builder_id_any:
        outcomes.append(_check_builder(req, prov))
    if req.source_uri:
        outcomes.append(_check_source(req.source_uri, prov))
    if req.source_branch:
        outcomes.append(_check_branch(req.source_branch, prov))
    if req.source_tag:
        outcomes.append(_check_tag(req.source_tag, prov))
    if req.source_versioned_tag:
        outcomes.append(_check_versioned_tag(req.source_versioned_tag, prov))
    if req.workflow_inputs:
        outcomes.append(_check_inputs(req.workflow_inputs, prov))
    return _result(outcomes, details)


def _result(outcomes: list[_Outcome], details: dict[str, Any]) -> CheckResult:
    failed = [o for o in outcomes if not o.passed]
    details = {
        **details,
        "checks": [o.as_dict() for o in outcomes],
        "error": failed[0].error if failed else None,
    }
    if failed:
        return CheckResult(False, "; ".join(o.reason for o in failed), details)
    return CheckResult(True, "; ".join(o.reason for o in outcomes), details)


def _check_builder(req: SlsaRequirement, prov: _Provenance) -> _Outcome:
    found = prov.builder_id
    if not found:
        return _Outcome(
            "builder", False, "the provenance names no builder id", "ErrorInvalidBuilderID"
        )
    try:
        name, version = parse_builder_id(found)
    except ValueError as exc:
        return _Outcome("builder", False, str(exc), "ErrorInvalidFormat")
    if prov.is_byob:
        problem = _byob_builder_problem(name, version)
        if problem:
            return _Outcome("builder", False, problem, "ErrorInvalidRef")
    if req.builder_id_any:
        return _Outcome(
            "builder", True, f"builder id {found} (any builder: builderId {{any: true}})"
        )
    if req.builder_id_prefix:
        prefix = req.builder_id_prefix
        # Without '@' the prefix judges the builder's path, so the builder's own ref
        # cannot be used to satisfy (or dodge) it.
        subject = found if "@" in prefix else name
        if subject.startswith(prefix):
            return _Outcome("builder", True, f"builder id {found} is under {prefix}")
        return _Outcome(
            "builder", False, f"builder id {found} is not under {prefix}", "ErrorMismatchBuilderID"
        )
    expected = req.builder_id_exact or ""
    expected_name, expected_version = parse_builder_id(expected)
    if expected_name == _GITHUB_RUNNER and name != _GITHUB_RUNNER:
        # Upstream knows the short runner id only as the builder of npm's v0.2 provenance.
        return _Outcome(
            "builder",
            False,
            f"builder id {expected} is the short GitHub runner id, which only npm's "
            f"SLSA v0.2 provenance uses; this provenance names {found}",
            "ErrorInvalidBuilderID",
        )
    if expected_name != name and not _same_runner(expected_name, prov):
        return _Outcome(
            "builder",
            False,
            f"builder id {found} is not {expected} (builder {name} differs from {expected_name})",
            "ErrorMismatchBuilderID",
        )
    if (
        expected_version
        and expected_version != version
        and "refs/tags/" + expected_version != version
    ):
        return _Outcome(
            "builder",
            False,
            f"builder id {found} is not {expected} (version {version or '(none)'}, "
            f"expected {expected_version})",
            "ErrorMismatchBuilderID",
        )
    return _Outcome("builder", True, f"builder id {found} matches {expected}")


def _same_runner(expected: str, prov: _Provenance) -> bool:
    """npm's v0.2 provenance names the hosted runner ``.../actions/runner``; slsa-verifier
    accepts ``.../runner/github-hosted`` for it there (VerifyNpmPackageProvenance), and only
    there: SLSA v1 provenance names the hosted runner in full."""
    return (
        expected == _GITHUB_HOSTED_RUNNER
        and prov.builder_id == _GITHUB_RUNNER
        and prov.predicate_type == PROVENANCE_V02
        and prov.build_type.startswith(NPM_CLI_BUILD_TYPE_PREFIX)
    )


def _byob_builder_problem(name: str, version: str) -> str | None:
    """``isValidDelegatorBuilderID``: a BYOB builder must be pinned at a release tag."""
    if not version:
        return f"delegator (BYOB) builder {name} is not pinned at a version (@refs/tags/vX.Y.Z)"
    if name.startswith(_JRELEASER_REPOSITORY):
        if _is_valid_jreleaser_tag(version):
            return None
        return (
            f"delegator (BYOB) builder {name}@{version} is not pinned at a release tag "
            "refs/tags/vX.Y.Z-<language>"
        )
    if is_valid_builder_tag(version):
        return None
    return (
        f"delegator (BYOB) builder {name}@{version} is not pinned at a release tag refs/tags/vX.Y.Z"
    )


def _check_source(expected_uri: str, prov: _Provenance) -> _Outcome:
    expected = normalize_git_uri(expected_uri)
    trigger = normalize_git_uri(prov.trigger_uri) if prov.trigger_uri else ""
    if trigger:
        trigger_repo, trigger_ref = split_git_uri(trigger)
        if trigger_repo != expected:
            return _Outcome(
                "source",
                False,
                f"source {expected_uri}: the build was triggered from {trigger}, expected "
                f"{expected}",
                "ErrorMismatchSource",
            )
        if not trigger_ref:
            return _Outcome(
                "source", False, f"trigger URI {trigger} names no ref", "ErrorMalformedURI"
            )
    if not prov.source_uri:
        return _Outcome(
            "source",
            False,
            f"source {expected_uri}: the provenance names no source "
            "(materials[0] / resolvedDependencies[0])",
            "ErrorInvalidDssePayload",
        )
    source = normalize_git_uri(prov.source_uri)
    source_repo, source_ref = split_git_uri(source)
    if source_repo != expected:
        return _Outcome(
            "source", False, f"source {source} is not {expected}", "ErrorMismatchSource"
        )
    if not source_ref:
        # npm CLI provenance from before GA and BYOB builds of another commit carry no ref.
        if prov.build_type in (NPM_CLI_BUILD_TYPE_V1, BYOB_BUILD_TYPE):
            return _Outcome("source", True, f"source {source} matches {expected}")
        return _Outcome("source", False, f"source URI {source} names no ref", "ErrorMalformedURI")
    if trigger and trigger != source:
        return _Outcome(
            "source",
            False,
            f"source {source} and trigger {trigger} differ: the build did not build what "
            "triggered it",
            "ErrorInvalidDssePayload",
        )
    return _Outcome("source", True, f"source {source} matches {expected}")


def _check_branch(expected: str, prov: _Provenance) -> _Outcome:
    try:
        branch = prov.branch()
    except InvalidRefError as exc:
        return _Outcome(
            "branch", False, f"branch {expected} expected, but {exc}", "ErrorInvalidRef"
        )
    if branch != expected:
        return _Outcome(
            "branch", False, f"branch {branch} is not {expected}", "ErrorMismatchBranch"
        )
    return _Outcome("branch", True, f"branch {branch} matches")


def _check_tag(expected: str, prov: _Provenance) -> _Outcome:
    try:
        tag = prov.tag()
    except InvalidRefError as exc:
        return _Outcome("tag", False, f"tag {expected} expected, but {exc}", "ErrorInvalidRef")
    if tag != expected:
        return _Outcome("tag", False, f"tag {tag} is not {expected}", "ErrorMismatchTag")
    return _Outcome("tag", True, f"tag {tag} matches")


def _check_versioned_tag(expected: str, prov: _Provenance) -> _Outcome:
    try:
        tag = prov.tag()
    except InvalidRefError as exc:
        return _Outcome(
            "versioned_tag",
            False,
            f"a tag matching {expected} expected, but {exc}",
            "ErrorInvalidRef",
        )
    problem = verify_versioned_tag(tag, expected)
    if problem is not None:
        error = (
            "ErrorInvalidSemver"
            if "not a semantic version" in problem
            else "ErrorMismatchVersionedTag"
        )
        return _Outcome(
            "versioned_tag",
            False,
            f"tag {tag} does not match versioned tag {expected}: {problem}",
            error,
        )
    return _Outcome("versioned_tag", True, f"tag {tag} matches versioned tag {expected}")


def _input_text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _check_inputs(expected: Mapping[str, str], prov: _Provenance) -> _Outcome:
    inputs, problem = prov.workflow_inputs()
    if inputs is None:
        return _Outcome(
            "workflow_inputs",
            False,
            f"workflow inputs {dict(expected)} expected, but {problem}",
            "ErrorMismatchWorkflowInputs",
        )
    differences = []
    for name, value in expected.items():
        if name not in inputs:
            differences.append(f"input {name!r} expected {value!r}, but the build had none")
            continue
        found = _input_text(inputs[name])
        if found != value:
            differences.append(f"input {name!r} is {found!r}, expected {value!r}")
    if differences:
        return _Outcome(
            "workflow_inputs", False, "; ".join(differences), "ErrorMismatchWorkflowInputs"
        )
    return _Outcome("workflow_inputs", True, f"workflow inputs {', '.join(sorted(expected))} match")


# -- verification summaries -------------------------------------------------------------------


def _slsa_track_level(level: str) -> tuple[str, int] | None:
    """SLSA_BUILD_LEVEL_2 -> ("BUILD", 2) as slsa-verifier's ``extractSLSALevels``."""
    parts = level.split("_", 3)
    if len(parts) != 4 or parts[0] != "SLSA" or parts[2] != "LEVEL":
        return None
    try:
        return parts[1], int(parts[3])
    except ValueError:
        return None


def _check_vsa(
    req: SlsaRequirement, predicate_type: str, statement: Mapping[str, Any]
) -> CheckResult:
    predicate = statement.get("predicate")
    predicate = predicate if isinstance(predicate, Mapping) else {}
    verifier = predicate.get("verifier")
    verifier_id = _text(verifier.get("id")) if isinstance(verifier, Mapping) else ""
    resource_uri = _text(predicate.get("resourceUri"))
    levels = predicate.get("verifiedLevels")
    if not isinstance(levels, list):
        # VSA v0.2 had a single policyLevel.
        levels = [predicate["policyLevel"]] if isinstance(predicate.get("policyLevel"), str) else []
    levels = [level for level in levels if isinstance(level, str)]
    result = _text(predicate.get("verificationResult"))
    details = {
        "predicate_type": predicate_type,
        "verifier_id": verifier_id,
        "resource_uri": resource_uri,
        "verified_levels": levels,
        "verification_result": result,
    }
    outcomes: list[_Outcome] = []
    if req.provenance_fields():
        outcomes.append(
            _Outcome(
                "predicate",
                False,
                f"{', '.join(req.provenance_fields())} judge SLSA provenance, but this "
                "statement is a verification summary (VSA); judge it with verifierId, "
                "resourceUri and verifiedLevels",
                "ErrorInvalidDssePayload",
            )
        )
    if req.verifier_id:
        outcomes.append(_equal("verifier", verifier_id, req.verifier_id, "ErrorMismatchVerifierID"))
    if req.resource_uri:
        outcomes.append(
            _equal("resource", resource_uri, req.resource_uri, "ErrorMismatchResourceURI")
        )
    outcomes.append(
        _Outcome("verification_result", True, "verification result PASSED")
        if result == "PASSED"
        else _Outcome(
            "verification_result",
            False,
            f"verification result is {result or '(none)'}, expected PASSED",
            "ErrorInvalidVerificationResult",
        )
    )
    if req.verified_levels:
        outcomes.append(_check_levels(req.verified_levels, levels))
    return _result(outcomes, details)


def _check_levels(expected: tuple[str, ...], found: list[str]) -> _Outcome:
    got: dict[str, int] = {}
    for level in found:
        parsed = _slsa_track_level(level) if level.startswith("SLSA_") else None
        if parsed:
            got[parsed[0]] = max(got.get(parsed[0], 0), parsed[1])
    missing = []
    for level in expected:
        parsed = _slsa_track_level(level) if level.startswith("SLSA_") else None
        if parsed:
            track, minimum = parsed
            if got.get(track, -1) < minimum:
                have = f"level {got[track]}" if track in got else "no level"
                missing.append(f"SLSA {track} level {minimum} or higher (found {have})")
        elif level not in found:
            missing.append(level)
    if missing:
        return _Outcome(
            "verified_levels",
            False,
            f"verified levels {found} lack {', '.join(missing)}",
            "ErrorMismatchVerifiedLevels",
        )
    return _Outcome("verified_levels", True, f"verified levels include {', '.join(expected)}")
