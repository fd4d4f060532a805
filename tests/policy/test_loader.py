"""Loading validates everything and reports every error with file, YAML path and line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from app.policy.loader import LoadError, PolicyLoadError
from app.policy.store import load_policy_set
from app.verification.trust_roots import builtin_root_path
from tests.policy.helpers import HEADER, Key, config, load, policy, write

REPO_POLICIES = Path(__file__).resolve().parents[2] / "policies"


def errors_of(directory: Path) -> list[LoadError]:
    with pytest.raises(PolicyLoadError) as info:
        load_policy_set(directory)
    return info.value.errors


def find(errors: list[LoadError], path: str) -> LoadError:
    matches = [e for e in errors if e.path == path]
    assert matches, f"no error at {path}: {[str(e) for e in errors]}"
    return matches[0]


def test_shipped_examples_load_cleanly() -> None:
    loaded = load_policy_set(REPO_POLICIES)
    names = {p.name for p in loaded.policies}
    assert {"acme-slsa-generator", "acme-signed-release"} <= names
    assert loaded.config.file == "config.yaml"
    assert loaded.config.break_glass_allowed("anything")
    assert not [w for w in loaded.warnings if "release" in w]


def test_valid_directory_compiles(policy_dir: Path) -> None:
    loaded = load(policy_dir, policy(), config())
    (compiled,) = loaded.policies
    assert compiled.name == "acme"
    assert compiled.file == "policy.yaml"
    assert compiled.requirements[0].predicate_type == "https://slsa.dev/provenance/v1"
    assert loaded.content_hash


def test_every_error_of_every_file_is_reported_at_once(policy_dir: Path) -> None:
    write(
        policy_dir,
        "a.yaml",
        f"""
        {HEADER.strip()}
        kind: ImagePolicy
        metadata: {{name: a}}
        spec:
          images: ["ghcr.io/acme/[x]"]
          mode: enforcing
          authorities:
            - name: ci
              keyless:
                trustRoot: nowhere
                identities: [{{issuer: x, subjectRegExp: "("}}]
          require:
            - predicateType: t
              authorities: [ci, nobody]
        """,
    )
    write(policy_dir, "b.yml", f"{HEADER}kind: Unknown\n")
    errors = errors_of(policy_dir)
    assert {e.file for e in errors} == {"a.yaml", "b.yml"}
    mode = find(errors, "spec.mode")
    assert mode.file == "a.yaml" and mode.line == 6
    assert find(errors, "kind").file == "b.yml"
    # A schema error does not hide the problems of the parts that are valid on their own.
    assert find(errors, "spec.images[0]").line == 5
    assert find(errors, "spec.authorities[0].keyless.trustRoot").line == 10
    assert find(errors, "spec.authorities[0].keyless.identities[0].subjectRegExp")
    # ...but references into a policy that failed its schema are not judged.
    assert not [e for e in errors if e.path.startswith("spec.require[0].authorities")]


def test_semantic_errors_carry_path_and_line(policy_dir: Path) -> None:
    write(
        policy_dir,
        "a.yaml",
        f"""
        {HEADER.strip()}
        kind: ImagePolicy
        metadata: {{name: a}}
        spec:
          images: ["ghcr.io/acme/[x]"]
          authorities:
            - name: ci
              keyless:
                trustRoot: nowhere
                identities: [{{issuer: x, subjectRegExp: "("}}]
                claims: {{sourceRepoURI: x}}
          require:
            - predicateType: t
              authorities: [ci, nobody]
        """,
    )
    errors = errors_of(policy_dir)
    glob = find(errors, "spec.images[0]")
    assert glob.line == 5 and "invalid image glob" in glob.message
    root = find(errors, "spec.authorities[0].keyless.trustRoot")
    assert root.line == 9 and "unknown trust root 'nowhere'" in root.message
    assert "trust/nowhere.json" in root.message
    regexp = find(errors, "spec.authorities[0].keyless.identities[0].subjectRegExp")
    assert regexp.line == 10 and "invalid regular expression" in regexp.message
    claim = find(errors, "spec.authorities[0].keyless.claims.sourceRepoURI")
    assert "unknown Fulcio claim" in claim.message and "sourceRepositoryURI" in claim.message
    unknown = find(errors, "spec.require[0].authorities[1]")
    assert unknown.line == 14 and "unknown authority 'nobody'" in unknown.message
    assert str(unknown).startswith("a.yaml:14: spec.require[0].authorities[1]: ")


def test_misspelt_field_is_an_error_not_ignored(policy_dir: Path) -> None:
    write(policy_dir, "p.yaml", policy(extra="  namespace: [prod]\n"))
    error = find(errors_of(policy_dir), "spec.namespace")
    assert "Extra inputs are not permitted" in error.message
    assert error.line == 6


def test_cel_syntax_error_names_the_file_line(policy_dir: Path) -> None:
    require = (
        "  require:\n"
        "    - predicateType: t\n"
        "      conditions:\n"
        "        - expression: 'predicate.x == '\n"
        "        - expression: |-\n"
        "            predicate.a == 1 &&\n"
        "              predicate.b.startsWith(\n"
    )
    write(policy_dir, "p.yaml", "# comment\n" + policy(require=require))
    errors = errors_of(policy_dir)
    first = find(errors, "spec.require[0].conditions[0].expression")
    assert first.line == 16 and "CEL syntax error" in first.message
    second = find(errors, "spec.require[0].conditions[1].expression")
    assert second.line == 19  # the second line of the block scalar


def test_unknown_cel_variable_fails_the_load(policy_dir: Path) -> None:
    require = "  require:\n    - predicateType: t\n      conditions: [{expression: 'img.x'}]\n"
    write(policy_dir, "p.yaml", policy(require=require))
    error = find(errors_of(policy_dir), "spec.require[0].conditions[0].expression")
    assert "unknown variable img" in error.message


def test_invalid_yaml_reports_its_line(policy_dir: Path) -> None:
    write(policy_dir, "p.yaml", "apiVersion: x\nkind: [unclosed\nspec: {}\n")
    (error,) = errors_of(policy_dir)
    assert error.file == "p.yaml" and error.line is not None and "invalid YAML" in error.message


def test_duplicate_yaml_keys_are_errors(policy_dir: Path) -> None:
    text = policy().replace("  images:", "  mode: audit\n  mode: enforce\n  images:")
    write(policy_dir, "p.yaml", text)
    error = find(errors_of(policy_dir), "spec.mode")
    assert error.message == "duplicate key 'mode'" and error.line == 6


def test_wrong_api_version_and_multi_document_numbers(policy_dir: Path) -> None:
    write(policy_dir, "p.yaml", policy() + "---\napiVersion: v1\nkind: ImagePolicy\n")
    error = find(errors_of(policy_dir), "apiVersion")
    assert error.document == 2 and error.line == 15
    assert "(document 2)" in str(error)


def test_one_policy_config_per_directory_and_unique_names(policy_dir: Path) -> None:
    write(policy_dir, "a.yaml", policy("same") + "---\n" + config())
    write(policy_dir, "b.yaml", policy("same") + "---\n" + config())
    errors = errors_of(policy_dir)
    assert any("already defined in a.yaml" in e.message for e in errors)
    assert any("one PolicyConfig; another is in a.yaml" in e.message for e in errors)


def test_key_files_are_checked(policy_dir: Path) -> None:
    authorities = (
        "  authorities:\n"
        "    - {name: missing, key: {file: keys/none.pub}}\n"
        "    - {name: escape, key: {file: ../outside.pub}}\n"
        "    - {name: inline, key: {data: 'not a key'}}\n"
        "    - {name: both, key: {file: a, data: b}}\n"
    )
    write(policy_dir, "p.yaml", policy(authorities=authorities))
    errors = errors_of(policy_dir)
    assert "exactly one of file or data" in find(errors, "spec.authorities[3].key").message
    assert "does not exist" in find(errors, "spec.authorities[0].key.file").message
    assert "inside the policy directory" in find(errors, "spec.authorities[1].key.file").message
    assert "no PEM public key" in find(errors, "spec.authorities[2].key.data").message


def test_key_outside_keys_dir_loads_with_a_warning(policy_dir: Path) -> None:
    write(policy_dir, "other/k.pem", Key().pem)
    authorities = "  authorities:\n    - {name: k, key: {file: other/k.pem}}\n"
    loaded = load(policy_dir, policy(authorities=authorities))
    assert any("not under keys/" in w for w in loaded.warnings)


def test_count_that_keys_can_never_meet_is_an_error(policy_dir: Path) -> None:
    write(policy_dir, "keys/a.pub", Key().pem)
    authorities = "  authorities:\n    - {name: a, key: {file: keys/a.pub}}\n"
    require = "  require:\n    - {predicateType: t, count: 2}\n"
    write(policy_dir, "p.yaml", policy(authorities=authorities, require=require))
    error = find(errors_of(policy_dir), "spec.require[0].count")
    assert "can never be met" in error.message


def test_custom_trust_root_by_file_name(policy_dir: Path) -> None:
    (policy_dir / "trust").mkdir()
    shutil.copy(builtin_root_path("public-good"), policy_dir / "trust" / "corp.json")
    text = policy().replace("      keyless:\n", "      keyless:\n        trustRoot: corp\n")
    loaded = load(policy_dir, text)
    assert loaded.policies[0].requirements[0].authorities[0].trust_root == "corp"  # type: ignore[union-attr]


def test_bad_trust_root_file_is_reported_with_policy_errors(policy_dir: Path) -> None:
    write(policy_dir, "trust/broken.json", "{}")
    write(policy_dir, "p.yaml", policy(images='["[bad"]'))
    errors = errors_of(policy_dir)
    assert any("broken.json" in e.message for e in errors)
    assert find(errors, "spec.images[0]")


def test_slsa_spec_errors_point_at_the_bad_key(policy_dir: Path) -> None:
    require = (
        "  require:\n"
        "    - predicateType: https://slsa.dev/provenance/v1\n"
        "      slsa:\n"
        "        sourceUri: github.com/acme/app\n"
        "        builderID: x\n"
    )
    write(policy_dir, "p.yaml", policy(require=require))
    error = find(errors_of(policy_dir), "spec.require[0].slsa.builderID")
    assert error.line == 16 and "unknown check" in error.message


def test_slsa_needs_a_predicate_type(policy_dir: Path) -> None:
    require = "  require:\n    - slsa: {sourceUri: github.com/acme/app}\n"
    write(policy_dir, "p.yaml", policy(require=require))
    assert "need a predicateType" in find(errors_of(policy_dir), "spec.require[0]").message


def test_layout_requirement_stands_alone(policy_dir: Path) -> None:
    require = "  require:\n    - {layout: {file: l.layout, keys: [k.pub]}, predicateType: t}\n"
    write(policy_dir, "p.yaml", policy(require=require))
    error = find(errors_of(policy_dir), "spec.require[0]")
    assert "cannot also set predicateType" in error.message


def test_layout_spec_errors_name_the_field(policy_dir: Path) -> None:
    require = "  require:\n    - layout: {file: layouts/none.layout, keys: [keys/o.pub]}\n"
    write(policy_dir, "p.yaml", policy(require=require))
    error = find(errors_of(policy_dir), "spec.require[0].layout.file")
    assert "does not exist" in error.message


def test_predicate_type_shorthands(policy_dir: Path) -> None:
    require = "  require:\n    - predicateType: slsaprovenance1\n    - predicateType: cyclonedx\n"
    loaded = load(policy_dir, policy(require=require))
    types = [r.predicate_type for r in loaded.policies[0].requirements]
    assert types == ["https://slsa.dev/provenance/v1", "https://cyclonedx.org/bom"]


def test_requirement_without_authorities_anywhere_is_an_error(policy_dir: Path) -> None:
    write(policy_dir, "p.yaml", policy(authorities="  authorities: []\n"))
    assert "no authorities" in find(errors_of(policy_dir), "spec.require[0]").message


def test_expired_exemption_loads_with_a_warning(policy_dir: Path) -> None:
    body = "  exemptions: [{images: [nginx], reason: old, expires: 2020-01-01}]\n"
    loaded = load(policy_dir, policy(), config(body))
    assert any("expired" in w for w in loaded.warnings)


def test_empty_directory_loads_with_warnings(policy_dir: Path) -> None:
    loaded = load_policy_set(policy_dir)
    assert loaded.policies == ()
    assert any("no ImagePolicy" in w for w in loaded.warnings)
    assert loaded.config.no_match == "deny"


EVIDENCE_AUTHORITY = (
    "  authorities:\n"
    "    - name: ci\n"
    "      keyless:\n"
    "        identities: [{issuer: https://token.actions.githubusercontent.com,"
    " subjectRegExp: '.+'}]\n"
    "        requireInclusionProof: true\n"
    "        minBundleVersion: '{version}'\n"
    "        verifiedTimestamps: 2\n"
)


def test_authority_evidence_rules_load(policy_dir: Path) -> None:
    write(policy_dir, "p.yaml", policy(authorities=EVIDENCE_AUTHORITY.replace("{version}", "0.2")))
    authority = load(policy_dir).policies[0].requirements[0].authorities[0]
    assert authority.evidence.require_inclusion_proof
    assert authority.evidence.min_bundle_version == (0, 2)
    assert authority.evidence.verified_timestamps == 2


def test_unknown_bundle_version_is_refused_with_its_line(policy_dir: Path) -> None:
    write(policy_dir, "p.yaml", policy(authorities=EVIDENCE_AUTHORITY.replace("{version}", "1")))
    error = find(errors_of(policy_dir), "spec.authorities[0].keyless.minBundleVersion")
    assert error.line == 11


def test_a_file_name_in_a_layout_error_is_not_read_as_a_key_path() -> None:
    from app.policy.loader import _refine

    loc, message = _refine(
        ("spec", "require", 0, "layout"),
        "layout",
        "layouts/root.layout: not signed in-toto metadata",
    )
    assert loc == ("spec", "require", 0, "layout")
    assert message == "layouts/root.layout: not signed in-toto metadata"
    loc, message = _refine(("spec",), "layout", "layout.keys[1]: unknown key")
    assert loc == ("spec", "keys", 1) and message == "unknown key"
