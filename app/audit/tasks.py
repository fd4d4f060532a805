"""Startup wiring: load (or generate) the signing key, then checkpoint periodically.

In ``create_app``'s lifespan::

    async with audit_lifespan(app):
        yield
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from app.audit.service import AuditLog, audit_log

log = logging.getLogger("provenant.audit")


async def checkpoint_loop(
    audit: AuditLog, interval: float, stop: asyncio.Event | None = None
) -> None:
    """Sign the tree now and every ``interval`` seconds (no new row when nothing was appended),
    until ``stop`` is set.

    Every process runs this; they sign identical notes for identical sizes, so running several
    is harmless. Signing also fills the subtree cache, which keeps proofs fast.
    """
    stop = stop or asyncio.Event()
    while not stop.is_set():
        try:
            checkpoint = await asyncio.to_thread(audit.make_checkpoint)
            log.debug("audit checkpoint at tree size %d", checkpoint.tree_size)
        except Exception:
            # A database hiccup must not end the loop: the next round retries.
            log.exception("audit checkpoint failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


@contextlib.asynccontextmanager
async def audit_lifespan(app: FastAPI) -> AsyncIterator[AuditLog]:
    """Fail at startup, not at the first request, when the key cannot be loaded or created."""
    audit = audit_log(app.state)
    interval = app.state.settings.audit_checkpoint_interval
    stop = asyncio.Event()
    task = asyncio.create_task(checkpoint_loop(audit, interval, stop)) if interval > 0 else None
    try:
        yield audit
    finally:
        if task is not None:
            # Stopping via the event, not cancel(): a checkpoint already running in its thread
            # finishes before shutdown (and before the database is disposed).
            stop.set()
            await task
