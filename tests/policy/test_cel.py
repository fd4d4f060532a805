"""CEL conditions: compile errors with positions, evaluation, and the cost bound."""

from __future__ import annotations

import time

import pytest

from app.policy.cel_conditions import (
    ConditionError,
    collection_width,
    compile_condition,
    evaluate,
    scan,
)

VARIABLES = {
    "predicate": {"buildDefinition": {"externalParameters": {"workflow": {"ref": "refs/tags/v1"}}}},
    "statement": {"subject": [{"name": "a"}]},
    "signer": {"kind": "keyless", "issuer": "https://issuer", "subject": "me"},
    "image": {"name": "ghcr.io/acme/app", "digest": "sha256:aa"},
}


def test_syntax_error_carries_line_and_column() -> None:
    with pytest.raises(ConditionError) as info:
        compile_condition('predicate.x == "a" &&\n  signer.issuer.startsWith(')
    assert info.value.line == 2
    assert info.value.column is not None
    assert "syntax error" in info.value.message


def test_unknown_variable_is_a_compile_error() -> None:
    with pytest.raises(ConditionError, match="unknown variable predicat"):
        compile_condition("predicat.x == 1")


def test_comprehension_variables_are_not_unknown() -> None:
    compile_condition('statement.subject.all(s, s.name.startsWith("a"))')


def test_too_deep_nesting_is_refused_at_load() -> None:
    with pytest.raises(ConditionError, match="nests 4 comprehensions"):
        compile_condition("statement.a.all(w, w.all(x, x.all(y, y.all(z, true))))")


def test_too_long_expression_is_refused() -> None:
    with pytest.raises(ConditionError, match="limit"):
        compile_condition("true && " * 1000 + "true")


def test_true_condition_passes() -> None:
    condition = compile_condition(
        'predicate.buildDefinition.externalParameters.workflow.ref.startsWith("refs/tags/")'
        ' && signer.kind == "keyless" && image.name.startsWith("ghcr.io/")'
    )
    assert evaluate([condition], VARIABLES).passed


def test_false_condition_names_its_message_and_expression() -> None:
    condition = compile_condition('signer.issuer == "https://other"', "wrong issuer")
    result = evaluate([condition], VARIABLES)
    assert not result.passed
    assert "'wrong issuer' is false" in result.reason
    assert 'signer.issuer == "https://other"' in result.reason


def test_evaluation_error_fails_the_condition() -> None:
    condition = compile_condition("predicate.missing.field == 1")
    result = evaluate([condition], VARIABLES)
    assert not result.passed
    assert "could not be evaluated" in result.reason
    assert "missing" in result.reason


def test_non_bool_result_fails() -> None:
    result = evaluate([compile_condition("size(statement.subject)")], VARIABLES)
    assert not result.passed
    assert "not a bool" in result.reason


def test_all_conditions_must_hold() -> None:
    ok = compile_condition("true")
    bad = compile_condition("false", "second")
    assert not evaluate([ok, bad], VARIABLES).passed
    assert evaluate([ok, ok], VARIABLES).passed


def test_scan_measures_nesting_and_ignores_strings() -> None:
    assert scan('a.all(x, x.exists(y, y == ".all("))').depth == 2
    assert scan('"a.all(x, x.all(y, true))"').depth == 0
    assert scan("a.map(x, x).filter(y, y)").depth == 1
    assert scan("a.all(x, true)").bound_names == {"x"}


def test_collection_width_finds_the_widest_collection() -> None:
    assert collection_width({"a": [1, 2, 3], "b": {"c": list(range(10))}}) == 10
    assert collection_width("x" * 100) == 0


def test_cost_bound_stops_an_expensive_expression_before_it_runs() -> None:
    # 3000 x 3000 pairs: ~1 s in the evaluator if it ran, which it must not.
    variables = {**VARIABLES, "statement": {"subject": [{"name": str(i)} for i in range(3000)]}}
    condition = compile_condition(
        "statement.subject.all(a, statement.subject.exists(b, a.name == b.name))"
    )
    started = time.perf_counter()
    result = evaluate([condition], variables)
    assert time.perf_counter() - started < 0.5
    assert not result.passed
    assert "exceeds the bound" in result.reason
    assert result.details["cost"] > result.details["budget"]


def test_cheap_comprehension_over_small_input_runs() -> None:
    condition = compile_condition("statement.subject.all(a, statement.subject.exists(b, true))")
    assert evaluate([condition], VARIABLES).passed


def test_budget_is_configurable() -> None:
    condition = compile_condition("statement.subject.all(s, true)")
    assert not evaluate([condition], VARIABLES, width=10, budget=5).passed
    assert evaluate([condition], VARIABLES, width=10, budget=10_000).passed
