"""Engine semantics: one test per rule (AND/OR/count, modes, namespaces, exemptions, noMatch,
tagOnly, onError) and explanations that tell missing from failing from error."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from app.policy.facts import StoredAttestation
from app.policy.lookup import LookupCache, material_digests
from app.policy.results import Evaluation, ImageResult, RequirementResult
from app.policy.store import PolicySet
from app.verification.facts import Subject
from tests.policy.helpers import (
    DIGEST,
    GENERATOR,
    GITHUB,
    IMAGE,
    NOW,
    OTHER_DIGEST,
    RELEASE_SAN,
    SLSA_V1,
    Key,
    config,
    decide,
    keyless,
    load,
    policy,
    provenance_v1,
    stored,
    write,
)

EVIL = "https://github.com/evil/app/.github/workflows/release.yml@refs/tags/v1"


def only_image(result: Evaluation) -> ImageResult:
    (image,) = result.images
    return image


def requirement(result: Evaluation, policy_index: int = 0, index: int = 0) -> RequirementResult:
    return only_image(result).policies[policy_index].requirements[index]


def key_policy(directory: Path, *keys: Key, require: str, name: str = "signed") -> str:
    lines = ["  authorities:"]
    for number, key in enumerate(keys):
        write(directory, f"keys/k{number}.pub", key.pem)
        lines.append(f"    - {{name: k{number}, key: {{file: keys/k{number}.pub}}}}")
    return policy(name, authorities="\n".join(lines) + "\n", require=require)


# -- the basic verdicts -------------------------------------------------------------------------


def test_verified_attestation_from_the_authority_allows(policy_dir: Path) -> None:
    attestation = stored(keyless())
    result = decide(load(policy_dir, policy()), [attestation])
    assert result.allowed
    req = requirement(result)
    assert req.status == "passed"
    assert req.attestations == (attestation.id,)
    assert result.policy_hash == load(policy_dir).content_hash


def test_no_attestation_is_missing(policy_dir: Path) -> None:
    result = decide(load(policy_dir, policy()), [])
    assert not result.allowed
    req = requirement(result)
    assert req.status == "missing"
    assert req.reason.startswith(f"no attestation of type {SLSA_V1} for sha256:{DIGEST}")
    assert "acme-ci" in req.reason


def test_attestation_present_but_failing_is_failing(policy_dir: Path) -> None:
    attestation = stored(keyless(san=EVIL))
    result = decide(load(policy_dir, policy()), [attestation])
    req = requirement(result)
    assert req.status == "failing"
    assert "1 attestation of type" in req.reason and "present, none passes" in req.reason
    assert f"found issuer https://token.actions.githubusercontent.com with subject {EVIL}" in (
        req.reason
    )
    assert req.rejected[0].attestation == attestation.id


def test_other_predicate_type_is_missing(policy_dir: Path) -> None:
    sbom = stored(keyless(), predicate_type="https://cyclonedx.org/bom", predicate={})
    assert requirement(decide(load(policy_dir, policy()), [sbom])).status == "missing"


def test_attestation_for_another_digest_does_not_count(policy_dir: Path) -> None:
    other = stored(keyless(), digest=OTHER_DIGEST)
    assert requirement(decide(load(policy_dir, policy()), [other])).status == "missing"


def test_revoked_attestation_does_not_count(policy_dir: Path) -> None:
    result = decide(load(policy_dir, policy()), [stored(keyless(), revoked=True)])
    req = requirement(result)
    assert req.status == "failing"
    assert "revoked: key compromised" in req.reason


def test_lookup_error_is_an_error_and_on_error_decides(policy_dir: Path) -> None:
    def broken(_algorithm: str, _hex: str) -> list[StoredAttestation]:
        raise ConnectionError("database is down")

    from app.policy.engine import evaluate

    denying = load(policy_dir, policy())
    result = evaluate(IMAGE, None, denying, broken, NOW)
    assert not result.allowed
    req = requirement(result)
    assert req.status == "error"
    assert "lookup failed: ConnectionError: database is down" in req.reason
    assert only_image(result).policies[0].status == "error"
    assert "denied by onError: deny" in only_image(result).policies[0].reason

    allowing = load(policy_dir, policy(extra="  onError: allow\n"))
    result = evaluate(IMAGE, None, allowing, broken, NOW)
    assert result.allowed
    assert "allowed by onError: allow" in only_image(result).policies[0].reason


def test_definite_failure_outranks_an_error(
    policy_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require = (
        "  require:\n"
        f"    - {{predicateType: {SLSA_V1},\n"
        "       slsa: {builderId: {any: true}, sourceUri: github.com/acme/app}}\n"
        "    - predicateType: https://cyclonedx.org/bom\n"
    )
    policy_set = load(policy_dir, policy(extra="  onError: allow\n", require=require))

    def exploding(*_args: object) -> object:
        raise RuntimeError("bug")

    monkeypatch.setattr("app.policy.slsa.check_slsa", exploding)
    result = decide(policy_set, [stored(keyless())])
    statuses = [r.status for r in only_image(result).policies[0].requirements]
    assert statuses == ["error", "missing"]
    assert not result.allowed  # onError: allow cannot rescue the missing SBOM


# -- AND / OR / count ---------------------------------------------------------------------------


def test_every_selecting_policy_must_pass(policy_dir: Path) -> None:
    sbom = "https://cyclonedx.org/bom"
    second = policy("sbom", require=f"  require:\n    - predicateType: {sbom}\n")
    policy_set = load(policy_dir, policy(), second)
    result = decide(policy_set, [stored(keyless())])
    assert not result.allowed
    assert [p.passed for p in only_image(result).policies] == [True, False]
    assert "denied by policy sbom" in only_image(result).reason
    both = [stored(keyless()), stored(keyless(), predicate_type=sbom, predicate={})]
    assert decide(policy_set, both).allowed


def test_every_requirement_of_a_policy_must_pass(policy_dir: Path) -> None:
    require = f"  require:\n    - predicateType: {SLSA_V1}\n    - predicateType: custom\n"
    policy_set = load(policy_dir, policy(require=require))
    assert not decide(policy_set, [stored(keyless())]).allowed
    custom = stored(keyless(), predicate_type="https://cosign.sigstore.dev/attestation/v1")
    assert decide(policy_set, [stored(keyless()), custom]).allowed


def test_any_authority_of_a_requirement_suffices(policy_dir: Path) -> None:
    a, b = Key(), Key()
    require = "  require:\n    - {authorities: [k0, k1]}\n"
    policy_set = load(policy_dir, key_policy(policy_dir, a, b, require=require))
    signature = stored(b.signer(), kind="message-signature", statement=None)
    assert decide(policy_set, [signature]).allowed
    stranger = stored(Key().signer(), kind="message-signature", statement=None)
    result = decide(policy_set, [stranger])
    assert not result.allowed
    assert "other authorities do not match" in requirement(result).reason


def test_count_needs_distinct_signers(policy_dir: Path) -> None:
    a, b = Key(), Key()
    require = "  require:\n    - {predicateType: custom, count: 2}\n"
    policy_set = load(policy_dir, key_policy(policy_dir, a, b, require=require))
    custom = "https://cosign.sigstore.dev/attestation/v1"

    twice_by_a = [stored(a.signer(), predicate_type=custom) for _ in range(2)]
    result = decide(policy_set, twice_by_a)
    assert not result.allowed
    assert "needs 2 distinct signers among k0, k1, found 1" in requirement(result).reason

    by_both = [stored(a.signer(), predicate_type=custom), stored(b.signer(), predicate_type=custom)]
    result = decide(policy_set, by_both)
    assert result.allowed
    assert set(requirement(result).attestations) == {x.id for x in by_both}


def test_one_envelope_with_two_trusted_signatures_counts_twice(policy_dir: Path) -> None:
    a, b = Key(), Key()
    require = "  require:\n    - {predicateType: custom, count: 2}\n"
    policy_set = load(policy_dir, key_policy(policy_dir, a, b, require=require))
    envelope = stored(
        a.signer(),
        b.signer(),
        predicate_type="https://cosign.sigstore.dev/attestation/v1",
        trust_root=None,
    )
    assert decide(policy_set, [replace(envelope, format="dsse")]).allowed


def test_one_keyless_identity_signing_twice_is_one_signer(policy_dir: Path) -> None:
    require = f"  require:\n    - {{predicateType: {SLSA_V1}, count: 2}}\n"
    policy_set = load(policy_dir, policy(require=require))
    assert not decide(policy_set, [stored(keyless()), stored(keyless())]).allowed
    other_workflow = keyless(san=RELEASE_SAN_2)
    assert decide(policy_set, [stored(keyless()), stored(other_workflow)]).allowed


RELEASE_SAN_2 = "https://github.com/acme/app/.github/workflows/hotfix.yml@refs/tags/v1.2.4"


# -- signatures without a predicate type --------------------------------------------------------


def test_no_predicate_type_accepts_a_message_signature_or_any_attestation(
    policy_dir: Path,
) -> None:
    key = Key()
    policy_set = load(policy_dir, key_policy(policy_dir, key, require="  require:\n    - {}\n"))
    signature = stored(key.signer(), kind="message-signature", statement=None)
    assert decide(policy_set, [signature]).allowed
    any_statement = stored(key.signer(), predicate_type="https://example.com/anything")
    assert decide(policy_set, [any_statement]).allowed
    result = decide(policy_set, [])
    assert requirement(result).reason.startswith("no signature or attestation for sha256:")


def test_links_are_not_signatures(policy_dir: Path) -> None:
    key = Key()
    policy_set = load(policy_dir, key_policy(policy_dir, key, require="  require:\n    - {}\n"))
    link = stored(
        key.signer(),
        kind="link",
        predicate_type="https://in-toto.io/Link/v1",
        statement={"_type": "link", "name": "build"},
        trust_root=None,
    )
    assert requirement(decide(policy_set, [link])).status == "missing"


# -- SLSA and conditions ------------------------------------------------------------------------


# The release workflow and slsa-github-generator's builders, both under GitHub's issuer.
CI_AND_GENERATOR = (
    "  authorities:\n"
    "    - name: ci\n"
    "      keyless:\n"
    "        identities:\n"
    f"          - issuer: {GITHUB}\n"
    "            subjectRegExp: '^https://github\\.com/(acme|slsa-framework)/.+@refs/tags/v.*$'\n"
)


def test_slsa_failure_says_expected_and_found(policy_dir: Path) -> None:
    require = (
        "  require:\n"
        f"    - predicateType: {SLSA_V1}\n"
        "      slsa:\n"
        "        builderId: {prefix: 'https://github.com/slsa-framework/slsa-github-generator/'}\n"
        "        sourceUri: github.com/acme/app\n"
    )
    policy_set = load(policy_dir, policy(authorities=CI_AND_GENERATOR, require=require))
    # The generator's own certificate: the builder signs its provenance.
    assert decide(policy_set, [stored(keyless(san=GENERATOR))]).allowed
    bad = stored(keyless(san=GENERATOR), predicate=provenance_v1(builder_id="https://x"))
    req = requirement(decide(policy_set, [bad]))
    assert req.status == "failing"
    assert (
        "builder id https://x is not under "
        "https://github.com/slsa-framework/slsa-github-generator/" in req.reason
    )


def test_a_builder_id_written_by_another_workflow_is_not_the_builder(policy_dir: Path) -> None:
    require = (
        f"  require:\n    - predicateType: {SLSA_V1}\n      slsa:\n        builderId: {GENERATOR}\n"
    )
    policy_set = load(policy_dir, policy(authorities=CI_AND_GENERATOR, require=require))
    # The policy's authority accepts the release workflow, which wrote the generator's id.
    forged = stored(keyless(san=RELEASE_SAN))
    req = requirement(decide(policy_set, [forged]))
    assert req.status == "failing"
    assert f"builder {GENERATOR} is not the signing workflow {RELEASE_SAN}" in req.reason


def test_any_builder_still_binds_a_claimed_github_workflow(policy_dir: Path) -> None:
    require = (
        "  require:\n"
        f"    - predicateType: {SLSA_V1}\n"
        "      slsa: {builderId: {any: true}, sourceUri: github.com/acme/app}\n"
    )
    policy_set = load(policy_dir, policy(authorities=CI_AND_GENERATOR, require=require))
    assert not decide(policy_set, [stored(keyless(san=RELEASE_SAN))]).allowed
    assert decide(policy_set, [stored(keyless(san=GENERATOR))]).allowed
    other = stored(keyless(san=RELEASE_SAN), predicate=provenance_v1(builder_id="https://ci/x"))
    assert decide(policy_set, [other]).allowed  # no builder relied on: the identity decides


def test_conditions_see_predicate_signer_and_image(policy_dir: Path) -> None:
    require = f"""\
  require:
    - predicateType: {SLSA_V1}
      conditions:
        - expression: >-
            predicate.buildDefinition.externalParameters.workflow.ref.startsWith("refs/tags/")
          message: release images are built from tags
        - expression: >-
            signer.extensions.sourceRepositoryURI == "https://github.com/acme/app"
        - expression: >-
            image.repository == "acme/app" && image.digest.startsWith("sha256:")
        - expression: >-
            statement.subject.exists(s, image.digest.endsWith(s.digest.sha256))
"""
    policy_set = load(policy_dir, policy(require=require))
    assert decide(policy_set, [stored(keyless())]).allowed
    branch = stored(keyless(), predicate=provenance_v1(ref="refs/heads/main"))
    req = requirement(decide(policy_set, [branch]))
    assert req.status == "failing"
    assert "condition 'release images are built from tags' is false" in req.reason


def test_condition_error_on_content_fails_the_attestation_not_the_policy(
    policy_dir: Path,
) -> None:
    # With onError: allow, an attestation crafted to make a condition error must not get in.
    require = (
        "  require:\n"
        f"    - predicateType: {SLSA_V1}\n"
        "      conditions: [{expression: 'predicate.notThere.x == 1'}]\n"
    )
    policy_set = load(policy_dir, policy(extra="  onError: allow\n", require=require))
    result = decide(policy_set, [stored(keyless())])
    assert not result.allowed
    assert requirement(result).status == "failing"
    assert "could not be evaluated" in requirement(result).reason


def test_passing_stops_early_at_count(policy_dir: Path) -> None:
    policy_set = load(policy_dir, policy())
    newest, older = stored(keyless(), age=0), stored(keyless(), age=10)
    assert requirement(decide(policy_set, [older, newest])).attestations == (newest.id,)


# -- modes --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "allowed", "warned", "audited"),
    [("enforce", False, False, False), ("warn", True, True, False), ("audit", True, False, True)],
)
def test_modes(policy_dir: Path, mode: str, allowed: bool, warned: bool, audited: bool) -> None:
    result = decide(load(policy_dir, policy(extra=f"  mode: {mode}\n")), [])
    image = only_image(result)
    assert result.allowed is allowed
    assert result.mode == mode
    assert bool(image.warnings) is warned
    assert bool(image.audit) is audited
    assert image.policies[0].status == "failed"


def test_enforce_wins_over_warn(policy_dir: Path) -> None:
    warn = policy("soft", extra="  mode: warn\n")
    result = decide(load(policy_dir, policy(), warn), [])
    assert not result.allowed and result.mode == "enforce"
    assert only_image(result).warnings


# -- selection: images and namespaces -----------------------------------------------------------


def test_namespaces_select_policies(policy_dir: Path) -> None:
    policy_set = load(policy_dir, policy(extra='  namespaces: ["prod-*"]\n'), config())
    assert not decide(policy_set, [], namespace="prod-eu").allowed
    dev = decide(policy_set, [], namespace="dev")
    assert not dev.allowed
    assert "no ImagePolicy selects ghcr.io/acme/app in namespace dev" in only_image(dev).reason
    assert only_image(dev).policies == ()
    # No namespace given: every policy that could apply does.
    assert only_image(decide(policy_set, [])).policies


def test_excluded_namespaces_skip_policy(policy_dir: Path) -> None:
    policy_set = load(policy_dir, policy(), config("  excludedNamespaces: [kube-*]\n"))
    result = decide(policy_set, [], image="nginx:latest", namespace="kube-system")
    assert result.allowed
    assert "namespace kube-system is excluded" in result.reason


@pytest.mark.parametrize(
    ("action", "allowed", "warned"),
    [("deny", False, False), ("warn", True, True), ("allow", True, False)],
)
def test_no_match(policy_dir: Path, action: str, allowed: bool, warned: bool) -> None:
    policy_set = load(policy_dir, policy(), config(f"  noMatch: {action}\n"))
    result = decide(policy_set, [], image=f"quay.io/other/app@sha256:{DIGEST}")
    assert result.allowed is allowed
    assert bool(result.warnings) is warned
    assert f"(noMatch: {action})" in result.reason


@pytest.mark.parametrize(
    ("action", "allowed", "warned"),
    [("deny", False, False), ("warn", True, True), ("allow", True, False)],
)
def test_tag_only(policy_dir: Path, action: str, allowed: bool, warned: bool) -> None:
    policy_set = load(policy_dir, policy(), config(f"  tagOnly: {action}\n"))
    result = decide(policy_set, [stored(keyless())], image="ghcr.io/acme/app:v1")
    assert result.allowed is allowed
    assert bool(result.warnings) is warned
    assert "has no digest: a tag can move" in result.reason
    assert "pin it as ghcr.io/acme/app@sha256:<digest>" in result.reason


def test_invalid_reference_is_denied_with_the_reason(policy_dir: Path) -> None:
    result = decide(load(policy_dir, policy()), [], image="ghcr.io/Acme/app")
    assert not result.allowed
    assert "bad repository component" in result.reason
    assert only_image(result).reference is None


def test_every_image_must_be_allowed(policy_dir: Path) -> None:
    from app.policy.engine import evaluate_images

    policy_set = load(policy_dir, policy(), config("  noMatch: allow\n"))
    attestations = [stored(keyless())]

    def lookup(algorithm: str, hex_: str) -> list[StoredAttestation]:
        return [a for a in attestations if a.subjects[0].digests.get(algorithm) == hex_]

    images = [IMAGE, f"ghcr.io/acme/sidecar@sha256:{OTHER_DIGEST}", "quay.io/x/y:1"]
    result = evaluate_images(images, "prod", policy_set, lookup, NOW)
    assert [i.allowed for i in result.images] == [True, False, False]
    assert not result.allowed
    assert result.reason.startswith(f"ghcr.io/acme/sidecar@sha256:{OTHER_DIGEST}: denied")


# -- exemptions ---------------------------------------------------------------------------------


def exemption_config(expires: str, namespaces: str = "") -> str:
    return config(
        "  exemptions:\n"
        "    - images: ['registry.k8s.io/pause*']\n"
        f"      reason: system image\n      expires: {expires}\n{namespaces}"
    )


def test_exemption_admits_even_tag_only_images(policy_dir: Path) -> None:
    policy_set = load(policy_dir, policy(images='["**"]'), exemption_config("2026-12-31"))
    result = decide(policy_set, [], image="registry.k8s.io/pause:3.9")
    assert result.allowed
    assert only_image(result).exemption == "system image"
    assert "exempted until 2027-01-01T00:00:00+00:00: system image" in result.reason


def test_exemption_date_is_inclusive(policy_dir: Path) -> None:
    # NOW is 2026-03-01 12:00 UTC: an exemption "expiring" that day still applies.
    policy_set = load(policy_dir, policy(images='["**"]'), exemption_config("2026-03-01"))
    assert decide(policy_set, [], image="registry.k8s.io/pause:3.9").allowed


def test_expired_exemption_no_longer_applies_and_says_so(policy_dir: Path) -> None:
    policy_set = load(policy_dir, policy(images='["**"]'), exemption_config("2026-02-28"))
    result = decide(policy_set, [], image=f"registry.k8s.io/pause@sha256:{DIGEST}")
    assert not result.allowed
    assert "exemption (system image) expired at 2026-03-01T00:00:00+00:00" in result.reason


def test_exemption_timestamp_is_exact(policy_dir: Path) -> None:
    policy_set = load(
        policy_dir, policy(images='["**"]'), exemption_config('"2026-03-01T11:59:59Z"')
    )
    assert not decide(policy_set, [], image="registry.k8s.io/pause:3.9").allowed


def test_exemption_limited_to_namespaces(policy_dir: Path) -> None:
    policy_set = load(
        policy_dir,
        policy(images='["**"]'),
        exemption_config("2026-12-31", "      namespaces: [infra]\n"),
    )
    assert decide(policy_set, [], image="registry.k8s.io/pause:3.9", namespace="infra").allowed
    assert not decide(policy_set, [], image="registry.k8s.io/pause:3.9", namespace="apps").allowed


def test_break_glass_is_parsed_and_exposed(policy_dir: Path) -> None:
    body = "  breakGlass: {enabled: true, namespaces: [prod-*]}\n"
    policy_set: PolicySet = load(policy_dir, policy(), config(body))
    assert policy_set.config.break_glass_allowed("prod-eu")
    assert not policy_set.config.break_glass_allowed("dev")
    assert not load(policy_dir, policy(), config()).config.break_glass_allowed("prod-eu")


# -- layouts: the links handed to the layout check ----------------------------------------------


def link(name: str, products: dict[str, str], materials: dict[str, str]) -> StoredAttestation:
    body = {
        "_type": "link",
        "name": name,
        "products": {p: {"sha256": d} for p, d in products.items()},
        "materials": {m: {"sha256": d} for m, d in materials.items()},
    }
    return replace(
        stored(Key().signer(), kind="link", statement=body, trust_root=None),
        predicate_type="https://in-toto.io/Link/v1",
        subjects=[Subject(p, {"sha256": d}) for p, d in products.items()],
    )


def test_links_of_a_build_are_gathered_backwards_through_materials() -> None:
    source, binary = "1" * 64, "2" * 64
    package = link("package", {"image": DIGEST}, {"app": binary})
    build = link("build", {"app": binary}, {"src": source})
    clone = link("clone", {"src": source}, {})
    unrelated = link("build", {"app": "3" * 64}, {"src": "4" * 64})
    everything = [package, build, clone, unrelated]

    def lookup(algorithm: str, hex_: str) -> list[StoredAttestation]:
        return [a for a in everything if any(s.digests.get(algorithm) == hex_ for s in a.subjects)]

    gathered = LookupCache(lookup, lookup).links(("sha256", DIGEST))
    assert {a.id for a in gathered} == {package.id, build.id, clone.id}
    assert material_digests(build) == [("sha256", source)]


def test_layout_without_links_is_missing(policy_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.policy import layouts

    monkeypatch.setattr(layouts, "load_layout_requirement", lambda spec, _dir: dict(spec))
    require = "  require:\n    - layout: {file: layouts/app.layout, keys: [keys/owner.pub]}\n"
    policy_set = load(policy_dir, policy(require=require))
    req = requirement(decide(policy_set, [stored(keyless())]))
    assert req.status == "missing"
    assert "no in-toto link has sha256:" in req.reason
    assert req.name == "layout layouts/app.layout"


def test_content_cel_cannot_hold_fails_only_that_attestation(policy_dir: Path) -> None:
    # Issue 11 item 11: a 4,000-digit integer in one attestation's predicate made the whole
    # requirement an error (and denied the image) though a valid attestation from the same
    # signer was beside it.
    require = (
        "  require:\n"
        f"    - predicateType: {SLSA_V1}\n"
        "      conditions:\n"
        "        - expression: >-\n"
        '            predicate.buildDefinition.externalParameters.workflow.ref != ""\n'
    )
    policy_set = load(policy_dir, policy(require=require))
    huge = provenance_v1()
    huge["buildDefinition"]["externalParameters"]["size"] = 10**3999
    result = decide(policy_set, [stored(keyless(), predicate=huge), stored(keyless())])
    assert requirement(result).status == "passed", requirement(result).reason
    assert result.allowed
    alone = requirement(decide(policy_set, [stored(keyless(), predicate=huge)]))
    assert alone.status == "failing"
    assert "content could not be given to the conditions" in alone.reason
