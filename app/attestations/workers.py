"""Ingest in worker processes: uploads are parsed, verified and stored away from the event loop
that answers the admission webhook.

An upload costs CPU in proportion to what its sender chose to send: a 10 MiB document is a
parse of 10 MiB, a canonical hash, a verification, and a store of its statement. In the
serving process, even in worker threads, that work holds the interpreter lock for tens to
hundreds of milliseconds at a time (one ``json.loads`` call never lets go of it): while 12
clients uploaded 9.6 MB documents, admission latency went from p50 24 ms to 3.9 s (issue 11).
Here the serving process only reads the body and hands its bytes to a worker process, which
runs the same ``service`` functions on its own database connection and returns the small
``Outcome``; the workers run at a lower CPU priority (``nice``), so on a busy machine the
processes answering admission come first. The trust store goes with each task, pickled once
per policy set, so every upload is verified against the policy set active when it arrived.

``PROVENANT_INGEST_WORKERS=0``, or a database only this process can reach (in-memory SQLite),
runs the same functions in threads of the serving process instead.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import pickle
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from fastapi.concurrency import run_in_threadpool

from app import limits
from app.admission.cache import expire_index_readers
from app.attestations import service
from app.db import Database
from app.errors import ApiError
from app.verification.trust import TrustStore

log = logging.getLogger("provenant.attestations")

# How much lower the workers' CPU priority is than the serving process's (see the module doc).
WORKER_NICENESS = 10


class IngestWorkers:
    """Runs ``service.ingest`` and ``service.ingest_upload`` for the upload route."""

    def __init__(self, db: Database, workers: int) -> None:
        self.db = db
        self.workers = workers if db.shared else 0
        self._executor: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        # The trust store last sent, and its pickle: a policy set's store is pickled once.
        self._trust: tuple[TrustStore, bytes] | None = None

    @property
    def in_processes(self) -> bool:
        return self.workers > 0

    # Workers start with the first upload, not with the server: their imports (about a second
    # each) would compete with the server's own start-up, which readiness probes wait for.

    def close(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    async def ingest_upload(
        self, trust: TrustStore, raw: bytes, **kwargs: Any
    ) -> service.Outcome | None:
        """``service.ingest_upload``: detect the format, verify, store (None: .intoto.jsonl)."""
        return await self._run(service.ingest_upload, trust, raw, kwargs)

    async def ingest(self, trust: TrustStore, raw: bytes, **kwargs: Any) -> service.Outcome:
        """``service.ingest``: one document (a line of .intoto.jsonl)."""
        outcome = await self._run(service.ingest, trust, raw, kwargs)
        assert outcome is not None
        return outcome

    async def _run(
        self,
        function: Callable[..., service.Outcome | None],
        trust: TrustStore,
        raw: bytes,
        kwargs: dict[str, Any],
    ) -> service.Outcome | None:
        if not self.in_processes:
            return await run_in_threadpool(function, self.db, trust, raw, **kwargs)
        executor = self._pool()
        task = (function, self.db.url, self._pickled(trust), raw, kwargs)
        try:
            outcome = await asyncio.get_running_loop().run_in_executor(executor, _run_task, task)
        except BrokenProcessPool:
            # A worker died (killed, out of memory) with this upload: nothing of it was
            # committed (one transaction), so the client may send it again.
            self._replace(executor)
            raise ApiError(
                503,
                "ingest_unavailable",
                "the worker verifying this upload stopped; nothing was stored; retry",
            ) from None
        if outcome is not None and outcome.status == "created":
            # The worker's commit bumped the index version; this process's admission decisions
            # must see the upload at once, as they do when it is stored here.
            expire_index_readers()
        return outcome

    def _pickled(self, trust: TrustStore) -> bytes:
        sent = self._trust
        if sent is not None and sent[0] is trust:
            return sent[1]
        blob = pickle.dumps(trust, protocol=pickle.HIGHEST_PROTOCOL)
        self._trust = (trust, blob)
        return blob

    def _pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._executor is None:
                # spawn: the serving process has threads (recorder, thread pools), which fork
                # would copy in whatever state they were in.
                self._executor = ProcessPoolExecutor(
                    max_workers=self.workers,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_init_worker,
                    # A spawned worker starts with the module defaults: hand it this process's.
                    initargs=(limits.current(),),
                )
            return self._executor

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._executor is broken:
                self._executor = None
        broken.shutdown(wait=False, cancel_futures=True)
        log.error("an ingest worker process died; starting new ones")


# Worker side -----------------------------------------------------------------------------------

_databases: dict[str, Database] = {}
_trust_stores: dict[bytes, TrustStore] = {}


def _init_worker(input_limits: limits.InputLimits) -> None:
    limits.configure(input_limits)
    try:
        os.nice(WORKER_NICENESS)
    except OSError:  # pragma: no cover - not permitted here: still correct, only less fair
        pass


def _run_task(task: tuple[Any, ...]) -> service.Outcome | None:
    function, url, trust_blob, raw, kwargs = task
    db = _databases.get(url)
    if db is None:
        db = _databases[url] = Database(url, pool_size=1)
    trust = _trust_stores.get(trust_blob)
    if trust is None:
        _trust_stores.clear()  # one policy set at a time, as in the serving process
        trust = _trust_stores[trust_blob] = pickle.loads(trust_blob)  # noqa: S301 - our own
    outcome: service.Outcome | None = function(db, trust, raw, **kwargs)
    return outcome
