"""The startup hook: key loaded or generated at startup, periodic checkpoints."""

from __future__ import annotations

import asyncio
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI

from app.audit.checkpoint import verify_note
from app.audit.service import AuditLog, SignedCheckpoint
from app.audit.tasks import audit_lifespan, checkpoint_loop
from app.db import Database
from tests.audit.conftest import ORIGIN, append


def test_periodic_checkpoints_follow_the_log(db: Database) -> None:
    log = AuditLog(db, Ed25519PrivateKey.generate(), ORIGIN)

    async def scenario() -> list[int]:
        task = asyncio.create_task(checkpoint_loop(log, 0.05))
        sizes = []
        for _ in range(3):
            await asyncio.to_thread(append, db, 4)
            await asyncio.sleep(0.3)
            latest = log.latest_checkpoint()
            assert latest is not None
            sizes.append(latest.tree_size)
        task.cancel()
        return sizes

    assert asyncio.run(scenario()) == [4, 8, 12]
    latest = log.latest_checkpoint()
    assert latest is not None
    assert verify_note(latest.note, log.public_key).tree_size == 12


def test_lifespan_loads_the_key_at_startup_and_stops_cleanly(
    app: FastAPI, db: Database, key_file: Path
) -> None:
    app.state.settings = app.state.settings.model_copy(update={"audit_checkpoint_interval": 0.05})

    async def scenario() -> int:
        async with audit_lifespan(app) as log:
            assert key_file.exists()
            await asyncio.to_thread(append, db, 3)
            await asyncio.sleep(0.3)
            latest = log.latest_checkpoint()
            return latest.tree_size if latest else -1

    assert asyncio.run(scenario()) == 3
    assert app.state.audit.public_key is not None


def test_checkpoint_loop_survives_errors(db: Database) -> None:
    class Flaky(AuditLog):
        calls = 0

        def make_checkpoint(self) -> SignedCheckpoint:
            Flaky.calls += 1
            if Flaky.calls == 1:
                raise RuntimeError("database hiccup")
            return super().make_checkpoint()

    log = Flaky(db, Ed25519PrivateKey.generate(), ORIGIN)

    async def scenario() -> None:
        task = asyncio.create_task(checkpoint_loop(log, 0.02))
        await asyncio.sleep(0.2)
        task.cancel()

    asyncio.run(scenario())
    assert Flaky.calls >= 2 and log.latest_checkpoint() is not None
