"""A bounded schemathesis run in ``make test`` (a few hundred requests per database): zero 5xx,
and every answer is one the OpenAPI document describes. The full run (>= 10,000 requests per
database) is ``tests/fuzz/run_contract.py``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import BACKENDS, _empty_tables
from tests.fuzz.contract import Tally, copy_sqlite, run, running_app

EXAMPLES = int(os.environ.get("PROVENANT_FUZZ_EXAMPLES", "3"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_api_keeps_its_contract_under_generated_requests(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if backend == "sqlite":
        url = copy_sqlite(request.getfixturevalue("sqlite_template"), tmp_path / "fuzz.db")
    else:
        url = request.getfixturevalue("pg_server_url")
        _empty_tables(url)
    with running_app(url, tmp_path) as (app, tokens):
        tally = run(app, tokens, EXAMPLES, Tally())
    print(tally.summary())
    assert tally.requests >= 150
    assert tally.server_errors == 0, tally.failures[:20]
    # running_app allows no registry: a 502/504 here would mean a request left the process.
    assert tally.upstream_errors == 0
    assert tally.failures == [], "\n".join(tally.failures[:30])
