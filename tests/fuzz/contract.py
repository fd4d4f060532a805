"""Schemathesis against the in-process app: every operation of the OpenAPI document, examples
generated to fit it (positive) and not to (negative), each sent with an admin and a read-only
token. Counted: requests, statuses, and contract failures (any 5xx; a status, content type or
body the document does not describe)."""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.db import Database
from app.registry.router import UPSTREAM_STATUSES
from tests.admission.conftest import POLICIES
from tests.helpers import TokenFactory, write_trust
from tests.sigstore_stack import SigstoreTestStack

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)

# POST /v1/registry/pull is a gateway: when the registry behind it fails or stalls, 502 or 504
# is the honest answer (documented for that operation). Accepted there and nowhere else, and
# counted apart; the runs here allow no registry (registry_allowed="none"), so none is expected.
UPSTREAM = {("POST", "/v1/registry/pull"): UPSTREAM_STATUSES}


@dataclass
class Tally:
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    upstream_errors: int = 0  # documented gateway statuses of UPSTREAM operations

    @property
    def server_errors(self) -> int:
        total = sum(n for status, n in self.statuses.items() if status >= 500)
        return total - self.upstream_errors

    def summary(self) -> str:
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(self.statuses.items()))
        return (
            f"{self.requests} requests, {self.server_errors} 5xx "
            f"(+{self.upstream_errors} documented upstream 502/504), "
            f"{len(self.failures)} contract failures; statuses {statuses}"
        )


def policy_dir(directory: Path) -> Path:
    """The admission tests' policies and trust: operations meet a realistic policy set."""
    write_trust(directory, SigstoreTestStack.get())
    (directory / "policies.yaml").write_text(POLICIES)
    return directory


@contextmanager
def running_app(database_url: str, directory: Path) -> Iterator[tuple[FastAPI, dict[str, Any]]]:
    """The app on ``database_url``, started, with an admin and a read-only token."""
    from app.main import create_app
    from app.settings import Settings

    policies = policy_dir(directory / "policies")
    app = create_app(
        Settings(
            database_url=database_url,
            policy_dir=policies,
            audit_key_file=directory / "audit-key.pem",
            admission_recorder="thread",
            audit_checkpoint_interval=0,
            admission_index_max_age=0,  # revocations wait this long: keep the run fast
            # Generated image references name any host: none may be contacted from a test.
            registry_allowed="none",
        )
    )
    db = Database(database_url, pool_size=2)
    try:
        make = TokenFactory(db)
        tokens = {"admin": make("admin", name="fuzz-admin"), "read": make("read", name="fuzz")}
    finally:
        db.dispose()
    with TestClient(app, raise_server_exceptions=False):  # runs the lifespan
        yield app, tokens


def run(app: FastAPI, tokens: dict[str, Any], examples: int, tally: Tally) -> Tally:
    """``examples`` per operation and generation mode, each sent once per token."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in MODES:
            _run_operation(operation, mode, tokens, examples, tally)
    return tally


def _run_operation(
    operation: Any, mode: GenerationMode, tokens: dict[str, Any], examples: int, tally: Tally
) -> None:
    upstream = UPSTREAM.get((operation.method.upper(), operation.path), frozenset())

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def exercise(case: Any) -> None:
        for name, headers in tokens.items():
            merged = {**(case.headers or {}), **headers}
            try:
                response = case.call(headers=merged)
            except Exception as exc:  # the in-process app raised: the server would answer 500
                tally.requests += 1
                tally.statuses[500] += 1
                tally.failures.append(
                    f"{operation.method.upper()} {operation.path} [{mode.value}, {name}] "
                    f"raised {type(exc).__name__}: {exc}"
                )
                continue
            tally.requests += 1
            tally.statuses[response.status_code] += 1
            checks = CHECKS
            if response.status_code in upstream:
                tally.upstream_errors += 1
                checks = [c for c in CHECKS if c is not not_a_server_error]
            try:
                case.validate_response(response, checks=checks)
            except (Exception, BaseExceptionGroup) as exc:  # counted and named; the run goes on
                first = str(exc).strip().splitlines()[0:3]
                tally.failures.append(
                    f"{operation.method.upper()} {operation.path} [{mode.value}, {name}] "
                    f"{response.status_code}: {' | '.join(first)}"
                )

    try:
        exercise()
    except Unsatisfiable:  # nothing to negate: an operation without parameters or body
        pass


def copy_sqlite(template: Path, target: Path) -> str:
    shutil.copy(template, target)
    return f"sqlite:///{target}"
