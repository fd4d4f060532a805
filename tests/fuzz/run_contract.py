"""The full schemathesis run: at least 10,000 requests per database, admin and read-only
tokens, positive and negative examples; prints the counts and exits 1 on any 5xx or contract
failure.

    .venv/bin/python -m tests.fuzz.run_contract --database sqlite --examples 150
    .venv/bin/python -m tests.fuzz.run_contract --database postgresql --examples 150

PostgreSQL: a fresh database on PROVENANT_TEST_PG_URL's server (default
postgresql+psycopg://postgres@127.0.0.1:5432/test), dropped afterwards.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text

from app.migrate import upgrade
from tests.fuzz.contract import Tally, run, running_app

PG_ADMIN_URL = os.environ.get(
    "PROVENANT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@contextmanager
def database(kind: str, directory: Path) -> Iterator[str]:
    if kind == "sqlite":
        url = f"sqlite:///{directory / 'fuzz.db'}"
        upgrade(url)
        yield url
        return
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"provenant_fuzz_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--examples", type=int, default=150, help="per operation and mode")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the server logs every refusal; the counts matter here
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp, database(args.database, Path(tmp)) as url:
        with running_app(url, Path(tmp)) as (app, tokens):
            tally = run(app, tokens, args.examples, Tally())
    print(f"{args.database}: {tally.summary()} in {time.monotonic() - started:.0f} s")
    for failure in tally.failures[:50]:
        print("  " + failure)
    return 1 if tally.failures or tally.server_errors else 0


if __name__ == "__main__":
    sys.exit(main())
