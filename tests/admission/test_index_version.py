"""The index version each process trusts for at most ``max_age``: fresh, expired, and never
older than a change committed through the process itself."""

from __future__ import annotations

import asyncio
import time

import pytest

from app.admission import cache
from app.admission.cache import IndexVersionReader, attestations_changed, read_index_version
from app.db import Database


def test_a_version_is_trusted_for_max_age_then_read_again(db: Database) -> None:
    reader = IndexVersionReader(db.engine, max_age=0.2)
    assert reader.fresh() is None  # never read
    version = reader.current()
    assert reader.fresh() == version
    time.sleep(0.25)
    assert reader.fresh() is None


def test_max_age_zero_reads_for_every_decision(db: Database) -> None:
    reader = IndexVersionReader(db.engine, max_age=0)
    reader.current()
    assert reader.fresh() is None


def test_a_change_committed_in_this_process_expires_every_reader_at_once(db: Database) -> None:
    readers = [IndexVersionReader(db.engine, max_age=60) for _ in range(2)]
    before = [reader.current() for reader in readers]
    with db.session() as session:
        attestations_changed(session)
    assert [reader.fresh() for reader in readers] == [None, None]
    after = [reader.current() for reader in readers]
    assert after[0] == after[1] != before[0]
    with db.session() as session:
        assert read_index_version(session) == after[0]


def test_a_read_that_began_before_an_expiry_is_not_kept(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader = IndexVersionReader(db.engine, max_age=60)
    real = cache.current_index_version

    def read_then_change(engine):  # the change commits while the read is under way
        value = real(engine)
        reader.expire()
        return value

    monkeypatch.setattr(cache, "current_index_version", read_then_change)
    reader.read()
    assert reader.fresh() is None


def test_concurrent_refreshes_share_one_read(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    reader = IndexVersionReader(db.engine, max_age=60)
    real = cache.current_index_version
    reads = []

    def counted(engine):
        reads.append(1)
        time.sleep(0.05)
        return real(engine)

    monkeypatch.setattr(cache, "current_index_version", counted)

    async def main() -> None:
        await asyncio.gather(*(reader.refresh() for _ in range(20)))

    asyncio.run(main())
    assert len(reads) == 1
    assert reader.fresh() is not None
