"""Statement validation (upstream in-toto vectors) and SLSA facts (real provenance)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.verification.errors import VerificationError
from app.verification.statement import (
    parse_statement,
    slsa_facts,
    validate_resource_descriptor,
    validate_slsa_provenance_v1,
)

TESTDATA = Path(__file__).resolve().parents[3] / "shared" / "testdata"
needs_testdata = pytest.mark.skipif(
    not TESTDATA.is_dir(), reason=f"shared test data not present at {TESTDATA}"
)
SHA = "ab" * 32


def manifest_cases(*kinds: str) -> list[Any]:
    if not TESTDATA.is_dir():
        return []
    cases = json.loads((TESTDATA / "manifest.json").read_text())["cases"]
    return [pytest.param(c, id=c["id"]) for c in cases if c["kind"] in kinds]


def stmt(**overrides: Any) -> dict[str, Any]:
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "a", "digest": {"sha256": SHA}}],
        "predicateType": "https://example.com/p/v1",
        "predicate": {},
    } | overrides


def error_code(call: Any, *args: Any) -> str | None:
    try:
        call(*args)
    except VerificationError as exc:
        return exc.code
    return None


# -- upstream validation vectors ----------------------------------------------------------------

VALIDATORS = {
    "intoto-attestation-statement": parse_statement,
    "intoto-attestation-resource-descriptor": validate_resource_descriptor,
    "intoto-attestation-slsa-provenance-v1-predicate": validate_slsa_provenance_v1,
}


@needs_testdata
@pytest.mark.parametrize("case", manifest_cases(*VALIDATORS))
def test_upstream_vector(case: dict[str, Any]) -> None:
    document = json.loads((TESTDATA / case["files"]["document"]).read_text())
    code = error_code(VALIDATORS[case["kind"]], document)
    if case["expected"] == "valid":
        assert code is None
    else:
        assert case["expected"] == "invalid"
        expected = (
            "subject_missing"
            if case["expected_error"]
            in (
                "ErrSubjectRequired",
                "ErrDigestRequired",
            )
            else "statement_invalid"
        )
        assert code == expected, case["expected_error"]


@needs_testdata
@pytest.mark.parametrize("case", manifest_cases("intoto-statement-example"))
def test_spec_examples_parse_or_fail_cleanly(case: dict[str, Any]) -> None:
    # Illustrative examples with no verdict: parse them, or fail with a code, never crash.
    document = json.loads((TESTDATA / case["files"]["document"]).read_text())
    code = error_code(parse_statement, document)
    assert code in (None, "statement_invalid", "subject_missing")
    if code is None:
        assert parse_statement(document).predicate_type == case["predicate_type"]


# -- parse_statement ----------------------------------------------------------------------------


def test_parses_bytes_and_keeps_input_untouched() -> None:
    original = stmt(subject=[{"name": "a", "digest": {"sha256": SHA.upper(), "custom": "XyZ"}}])
    parsed = parse_statement(json.dumps(original).encode())
    assert parsed.statement_type == "https://in-toto.io/Statement/v1"
    assert parsed.predicate_type == "https://example.com/p/v1"
    assert parsed.subjects[0].digests == {"sha256": SHA, "custom": "XyZ"}
    assert parse_statement(original).statement["subject"][0]["digest"]["sha256"] == SHA
    assert original["subject"][0]["digest"]["sha256"] == SHA.upper()


def test_v01_predicate_may_be_omitted() -> None:
    body = stmt(_type="https://in-toto.io/Statement/v0.1")
    del body["predicate"]
    assert parse_statement(body).statement["predicate"] == {}
    assert "predicate" not in body  # filled in on parse_statement's copy only
    del body["_type"]
    assert error_code(parse_statement, body | {"_type": "https://in-toto.io/Statement/v1"}) == (
        "statement_invalid"
    )


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{", "statement_invalid"),
        (b"[1]", "statement_invalid"),
        (stmt(subject="a"), "statement_invalid"),
        (stmt(subject=["a"]), "statement_invalid"),
        (stmt(subject=[{"name": 1, "digest": {"sha256": SHA}}]), "statement_invalid"),
        (stmt(subject=[{"name": "a", "digest": ["sha256"]}]), "statement_invalid"),
        (stmt(subject=[{"name": "a", "digest": {"sha256": 5}}]), "statement_invalid"),
        (stmt(subject=[{"name": "a", "digest": {"sha1": SHA}}]), "statement_invalid"),
        (stmt(subject=[{"name": "a", "digest": {"sha256": "g" * 64}}]), "statement_invalid"),
        (stmt(subject=[{"name": "a"}]), "subject_missing"),
        (stmt(subject=None), "subject_missing"),
        (stmt(predicateType=None), "statement_invalid"),
        (stmt(predicate=[]), "statement_invalid"),
    ],
)
def test_invalid_statements(body: Any, code: str) -> None:
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    assert error_code(parse_statement, payload) == code


def test_subject_without_name_but_with_digest() -> None:
    parsed = parse_statement(stmt(subject=[{"digest": {"sha256": SHA}}]))
    assert parsed.subjects[0].name == ""


def test_predicates_are_not_judged_at_parse_time() -> None:
    # A real sigstore conformance bundle carries SLSA v1 without externalParameters.
    thin = {
        "buildDefinition": {"buildType": "https://example.com/b"},
        "runDetails": {"builder": {"id": "https://example.com/builder"}},
    }
    parsed = parse_statement(stmt(predicateType="https://slsa.dev/provenance/v1", predicate=thin))
    facts = slsa_facts(parsed.statement)
    assert facts["builder_id"] == "https://example.com/builder"
    assert facts["problems"] == [
        "SLSA v1 provenance: buildDefinition.externalParameters is required"
    ]


# -- slsa_facts ---------------------------------------------------------------------------------

GITHUB_V1 = {
    "buildDefinition": {
        "buildType": "https://actions.github.io/buildtypes/workflow/v1",
        "externalParameters": {
            "workflow": {
                "ref": "refs/tags/v1.2.3",
                "repository": "https://github.com/acme/app",
                "path": ".github/workflows/release.yml",
            }
        },
        "internalParameters": {"github": {"event_name": "push"}},
        "resolvedDependencies": [
            {
                "uri": "git+https://github.com/acme/other@refs/heads/main",
                "digest": {"gitCommit": "1" * 40},
            },
            {
                "uri": "git+https://github.com/acme/app@refs/tags/v1.2.3",
                "digest": {"gitCommit": "A" * 40},
            },
        ],
    },
    "runDetails": {
        "builder": {"id": "https://github.com/actions/runner/github-hosted"},
        "metadata": {"invocationId": "https://github.com/acme/app/actions/runs/1/attempts/1"},
    },
}


def test_slsa_v1_github_workflow() -> None:
    facts = slsa_facts(stmt(predicateType="https://slsa.dev/provenance/v1", predicate=GITHUB_V1))
    assert facts == {
        "slsa_version": "v1",
        "builder_id": "https://github.com/actions/runner/github-hosted",
        "build_type": "https://actions.github.io/buildtypes/workflow/v1",
        "invocation_id": "https://github.com/acme/app/actions/runs/1/attempts/1",
        "source_repository": "https://github.com/acme/app",
        "source_ref": "refs/tags/v1.2.3",
        "source_commit": "a" * 40,
        "entry_point": ".github/workflows/release.yml",
        "external_parameters": GITHUB_V1["buildDefinition"]["externalParameters"],
        "internal_parameters": {"github": {"event_name": "push"}},
        "resolved_dependencies": [
            {
                "uri": "git+https://github.com/acme/other@refs/heads/main",
                "name": None,
                "digests": {"gitCommit": "1" * 40},
            },
            {
                "uri": "git+https://github.com/acme/app@refs/tags/v1.2.3",
                "name": None,
                "digests": {"gitCommit": "a" * 40},
            },
        ],
        "problems": [],
    }


def test_slsa_v1_without_workflow_uses_first_git_dependency() -> None:
    predicate = {
        "buildDefinition": {
            "buildType": "https://github.com/slsa-framework/slsa-github-generator/delegator-generic@v0",
            "externalParameters": {"inputs": {}},
            "resolvedDependencies": [
                {"uri": "https://example.com/tool.tgz", "digest": {"sha256": SHA}},
                {
                    "uri": "git+https://github.com/acme/app@refs/heads/main",
                    "digest": {"sha1": "b" * 40},
                },
            ],
        },
        "runDetails": {"builder": {"id": "https://github.com/acme/builder.yml@refs/tags/v1"}},
    }
    facts = slsa_facts(stmt(predicateType="https://slsa.dev/provenance/v1", predicate=predicate))
    assert (facts["source_repository"], facts["source_ref"], facts["source_commit"]) == (
        "https://github.com/acme/app",
        "refs/heads/main",
        "b" * 40,
    )
    assert facts["entry_point"] is None


def test_slsa_v02_config_source() -> None:
    predicate = {
        "buildType": "https://github.com/npm/cli/gha/v2",
        "builder": {"id": "https://github.com/actions/runner"},
        "invocation": {
            "configSource": {
                "uri": "git+https://github.com/acme/app@refs/heads/main",
                "digest": {"sha1": "c" * 40},
                "entryPoint": ".github/workflows/release.yml",
            },
            "parameters": {"x": 1},
            "environment": {"GITHUB_REF": "refs/heads/main"},
        },
        "metadata": {"buildInvocationId": "42-1"},
        "materials": [
            {"uri": "git+https://github.com/acme/app@refs/heads/main", "digest": {"sha1": "c" * 40}}
        ],
    }
    facts = slsa_facts(
        stmt(
            _type="https://in-toto.io/Statement/v0.1",
            predicateType="https://slsa.dev/provenance/v0.2",
            predicate=predicate,
        )
    )
    assert facts["slsa_version"] == "v0.2"
    assert facts["builder_id"] == "https://github.com/actions/runner"
    assert facts["build_type"] == "https://github.com/npm/cli/gha/v2"
    assert facts["invocation_id"] == "42-1"
    assert facts["source_repository"] == "https://github.com/acme/app"
    assert facts["source_ref"] == "refs/heads/main"
    assert facts["source_commit"] == "c" * 40
    assert facts["entry_point"] == ".github/workflows/release.yml"
    assert facts["external_parameters"] == {"x": 1}
    assert facts["internal_parameters"] == {"GITHUB_REF": "refs/heads/main"}
    assert facts["resolved_dependencies"][0]["digests"] == {"sha1": "c" * 40}
    assert facts["problems"] == []


def test_slsa_v02_falls_back_to_materials_and_reports_problems() -> None:
    predicate = {"materials": [{"uri": "git+https://gitlab.com/g/p", "digest": {"sha1": "d" * 40}}]}
    facts = slsa_facts(stmt(predicateType="https://slsa.dev/provenance/v0.2", predicate=predicate))
    assert (facts["source_repository"], facts["source_ref"], facts["source_commit"]) == (
        "https://gitlab.com/g/p",
        None,
        "d" * 40,
    )
    assert facts["builder_id"] is None
    assert facts["problems"] == ["SLSA v0.2 provenance: builder.id is required"]


def test_slsa_facts_of_other_predicates_and_junk() -> None:
    assert slsa_facts(stmt()) == {}
    assert slsa_facts({"predicateType": "https://slsa.dev/provenance/v1", "predicate": "x"}) == {}
    junk = slsa_facts(
        {"predicateType": "https://slsa.dev/provenance/v1", "predicate": {"buildDefinition": 3}}
    )
    assert junk["builder_id"] is None and junk["resolved_dependencies"] == []
    assert junk["problems"]


# -- real provenance from slsa-verifier (upstream expectations on source / tag) ----------------


def _statements(path: Path) -> Iterator[dict[str, Any]]:
    raw = path.read_bytes()
    try:
        documents = [json.loads(raw)]
    except json.JSONDecodeError:
        documents = [json.loads(line) for line in raw.splitlines() if line.strip()]
    stack: list[Any] = documents
    while stack:
        item = stack.pop(0)
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            envelope = item.get("dsseEnvelope", item)
            if isinstance(envelope, dict) and "payload" in envelope and "payloadType" in envelope:
                yield json.loads(base64.b64decode(envelope["payload"]))
            else:
                stack.extend(v for v in item.values() if isinstance(v, dict | list))


@needs_testdata
@pytest.mark.parametrize("case", manifest_cases("slsa-provenance"))
def test_slsa_verifier_source_and_tag(case: dict[str, Any]) -> None:
    [statement] = [
        s
        for s in _statements(TESTDATA / case["files"]["provenance"])
        if s["predicateType"].startswith("https://slsa.dev/provenance/")
    ]
    facts = slsa_facts(parse_statement(statement).statement)
    assert facts["problems"] == []
    policy, error = case["policy"], case["expected_error"]
    source_matches = facts["source_repository"] == "https://" + policy["source"]
    if case["expected"] == "pass" or error not in (None, "ErrorMismatchSource"):
        assert source_matches
    if error == "ErrorMismatchSource":
        assert not source_matches
    if "ptag" in policy:
        tag_matches = facts["source_ref"] == "refs/tags/" + policy["ptag"]
        assert tag_matches == (case["expected"] == "pass")
    assert facts["builder_id"]
    assert facts["source_commit"] and len(facts["source_commit"]) == 40


@needs_testdata
def test_real_statements_in_testdata_parse() -> None:
    found = 0
    for path in sorted(TESTDATA.rglob("*")):
        if not path.is_file() or path.suffix in (".tgz", ".gz", ".whl") or "vectors" in path.parts:
            continue
        try:
            statements = list(_statements(path))
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
            continue
        for statement in statements:
            if statement.get("_type", "").startswith("https://in-toto.io/Statement/"):
                parsed = parse_statement(statement)
                assert parsed.subjects
                found += 1
    assert found > 50
