"""Is the builder a provenance claims vouched for by who signed it? (slsa-verifier's
``VerifyBuilderIdentity`` / ``verifyTrustedBuilderRef``, per builder family.)

Anyone who can run a GitHub workflow can write any builder id into a statement and sign it with
their own identity, so ``builder.id`` alone proves nothing: the signing identity must be the
builder, or a builder that speaks for it. Families, judged in this order:

- **key-signed** provenance: nothing in a signature names a workflow. The key is one of the
  requirement's authorities, which the policy names next to the builder id; that pairing is
  the binding (a policy author pins a builder's key by listing only that key authority in the
  requirement's ``authorities:``).
- **BYOB / delegator** (build type ``.../delegator-generic@v0``): the certificate's workflow
  (Build Signer URI, else the SAN) must be slsa-github-generator's delegator workflow at a
  release tag ``refs/tags/vX.Y.Z``; the delegator records which trusted reusable workflow it
  ran, and that is the builder id. ``refs/heads/main`` is accepted only for builds of
  slsa-github-generator's own e2e repository, as upstream does.
- **the GitHub runner** (``https://github.com/actions/runner[/github-hosted]``: GitHub artifact
  attestations, npm provenance): the runner signs nothing; the signer is the calling workflow.
  The certificate's Build Config URI (else the SAN) must be the workflow the provenance names
  (``externalParameters.workflow`` or npm's ``configSource``), and a runner kind named in the
  builder id must be the certificate's Runner Environment.
- **a reusable workflow** (any other builder id naming ``.../.github/workflows/...``:
  slsa-github-generator builders, publish-to-bcr, ...): the certificate's workflow must be the
  builder, name and ref. slsa-github-generator's own builders must be at a release tag.
- **anything else** (keyless, other CI systems): the builder must be the signer's Build Signer
  URI or SAN; otherwise nothing ties them, and the policy must say ``builderId: {any: true}``
  and pin the signer with its authority's identity.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.policy.slsa import (
    BYOB_BUILD_TYPE,
    ProvenanceFormatError,
    SlsaRequirement,
    is_valid_builder_tag,
    normalize_git_uri,
    parse_builder_id,
    read_provenance,
    split_git_uri,
)
from app.verification.facts import SignerFacts

GITHUB = "https://github.com/"
_GENERATOR = "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/"
TRUSTED_DELEGATORS = frozenset(
    _GENERATOR + name
    for name in ("delegator_generic_slsa3.yml", "delegator_lowperms-generic_slsa3.yml")
)
# slsa-verifier's e2eTestRepository: its builds may use the generator at refs/heads/main.
_E2E_REPOSITORY = "https://github.com/slsa-framework/example-package"
_RUNNERS = {
    "https://github.com/actions/runner": None,  # npm v0.2: hosted, by upstream's reading
    "https://github.com/actions/runner/github-hosted": "github-hosted",
    "https://github.com/actions/runner/self-hosted": "self-hosted",
}


def signer_workflow(signer: SignerFacts) -> str:
    """The GitHub workflow (``https://github.com/o/r/.github/workflows/f.yml@ref``) that
    obtained the certificate: Build Signer URI, or the SAN of older Fulcio certificates."""
    uri = signer.extensions.get("buildSignerURI") or ""
    if not uri and signer.san and "/.github/workflows/" in signer.san:
        uri = signer.san
    return uri


def _caller_repository(signer: SignerFacts) -> str:
    uri = signer.extensions.get("sourceRepositoryURI")
    if uri:
        return uri
    repository = signer.extensions.get("githubWorkflowRepository")
    return GITHUB + repository if repository else ""


def builder_signer_problem(
    statement: Mapping[str, Any],
    builder_id: str,
    build_type: str,
    signer: SignerFacts,
    *,
    any_builder: bool,
) -> str | None:
    """None when ``signer`` vouches for ``builder_id``, else a sentence naming both."""
    if signer.kind == "key":
        return None
    workflow = signer_workflow(signer)
    signed_by = workflow or signer.san or "(no identity)"
    if build_type == BYOB_BUILD_TYPE:
        return _delegator_problem(builder_id, workflow, signer)
    if builder_id in _RUNNERS:
        return _runner_problem(statement, builder_id, signer)
    name, _ = _split(builder_id)
    if "/.github/workflows/" in name:
        return _reusable_workflow_problem(builder_id, workflow, signer)
    if builder_id and builder_id in (signer.extensions.get("buildSignerURI"), signer.san):
        return None
    if any_builder:
        # The policy relies on no builder; its authorities pin the signer.
        return None
    return (
        f"nothing ties builder {builder_id or '(none)'} to the signer {signed_by}: the builder "
        "is neither the signing workflow nor a builder family whose signer is known; pin the "
        "signer in the authority's identity and use builderId: {any: true}"
    )


def _split(builder_id: str) -> tuple[str, str]:
    try:
        return parse_builder_id(builder_id)
    except ValueError:
        return builder_id, ""


def _delegator_problem(builder_id: str, workflow: str, signer: SignerFacts) -> str | None:
    name, ref = _split(workflow)
    if name not in TRUSTED_DELEGATORS:
        return (
            f"builder {builder_id} claims to run under slsa-github-generator's delegator, but "
            f"was signed by {workflow or signer.san or '(no workflow)'}, not by "
            f"{' or '.join(sorted(TRUSTED_DELEGATORS))}"
        )
    if is_valid_builder_tag(ref):
        return None
    if ref == "refs/heads/main" and _caller_repository(signer) == _E2E_REPOSITORY:
        return None
    return (
        f"builder {builder_id} was signed by the delegator {workflow}, which is not at a "
        "release tag refs/tags/vX.Y.Z"
    )


def _reusable_workflow_problem(builder_id: str, workflow: str, signer: SignerFacts) -> str | None:
    if not workflow:
        return (
            f"builder {builder_id} is a GitHub workflow, but the signer {signer.san} is not a "
            "GitHub Actions workflow identity"
        )
    if workflow != builder_id:
        return (
            f"builder {builder_id} is not the signing workflow {workflow} "
            "(slsa-verifier: untrusted reusable workflow)"
        )
    name, ref = _split(workflow)
    if name.startswith(_GENERATOR) and not is_valid_builder_tag(ref):
        if ref == "refs/heads/main" and _caller_repository(signer) == _E2E_REPOSITORY:
            return None
        return f"builder {builder_id} is slsa-github-generator's, but not at a release tag"
    return None


def _runner_problem(
    statement: Mapping[str, Any], builder_id: str, signer: SignerFacts
) -> str | None:
    caller = signer.extensions.get("buildConfigURI") or (
        signer.san if signer.san and "/.github/workflows/" in (signer.san or "") else ""
    )
    if not caller:
        return (
            f"builder {builder_id} is the GitHub runner, but the signer {signer.san} is not a "
            "GitHub Actions workflow identity"
        )
    kind = _RUNNERS[builder_id]
    environment = signer.extensions.get("runnerEnvironment")
    if kind and environment and environment != kind:
        return (
            f"builder {builder_id} names a {kind} runner, but the signer {caller} ran on a "
            f"{environment} runner"
        )
    expected = provenance_workflow(statement)
    if not expected:
        return (
            f"builder {builder_id} is the GitHub runner, but the provenance names no workflow "
            f"to compare with the signer {caller}"
        )
    if expected != caller:
        return (
            f"the provenance says workflow {expected} ran on {builder_id}, but the signer is "
            f"the workflow {caller}"
        )
    return None


def provenance_workflow(statement: Mapping[str, Any]) -> str:
    """The calling workflow as ``https://github.com/o/r/<path>@<ref>``, from SLSA v1's
    ``externalParameters.workflow`` or v0.2's ``invocation.configSource``; "" when absent."""
    predicate = statement.get("predicate")
    if not isinstance(predicate, Mapping):
        return ""
    definition = predicate.get("buildDefinition")
    if isinstance(definition, Mapping):
        external = definition.get("externalParameters")
        workflow = external.get("workflow") if isinstance(external, Mapping) else None
        if isinstance(workflow, Mapping):
            repository, path, ref = (workflow.get(k) for k in ("repository", "path", "ref"))
            if all(isinstance(v, str) and v for v in (repository, path, ref)):
                return f"{repository.rstrip('/')}/{path.lstrip('/')}@{ref}"  # type: ignore[union-attr]
        return ""
    invocation = predicate.get("invocation")
    config = invocation.get("configSource") if isinstance(invocation, Mapping) else None
    if isinstance(config, Mapping):
        uri, entry = config.get("uri"), config.get("entryPoint")
        if isinstance(uri, str) and isinstance(entry, str) and uri and entry:
            repository, ref = split_git_uri(normalize_git_uri(uri))
            if ref:
                return f"{repository.removeprefix('git+')}/{entry.lstrip('/')}@{ref}"
    return ""


def signers_vouching_for_builder(
    requirement: SlsaRequirement, statement: Mapping[str, Any], signers: list[SignerFacts]
) -> tuple[list[int], str]:
    """Indexes of ``signers`` that vouch for the provenance's builder, and else why none does.

    A verification summary names no builder: every signer stands."""
    if not requirement.provenance_fields():
        return list(range(len(signers))), ""
    try:
        provenance = read_provenance(statement)
    except ProvenanceFormatError as exc:
        return [], str(exc)
    bound: list[int] = []
    problems: list[str] = []
    for index, signer in enumerate(signers):
        problem = builder_signer_problem(
            statement,
            provenance.builder_id,
            provenance.build_type,
            signer,
            any_builder=requirement.builder_id_any,
        )
        if problem is None:
            bound.append(index)
        else:
            problems.append(problem)
    return bound, "; ".join(dict.fromkeys(problems))
