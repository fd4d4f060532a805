"""Group commit for admission decisions, in a writer thread (PROVENANT_ADMISSION_RECORDER=thread;
``recorder_process`` does the same in a child process, the default for ``provenant serve``).

Every decision is committed, with its audit event, before its answer leaves (an unrecorded
admission is exactly what an audit trail must not have). Committing each one in its own
transaction made the audit log's lock and the per-transaction overhead the ceiling on decisions
per second. Here one writer thread per process takes every decision waiting at that moment and
commits them together: the requests wait for that commit, no less durably than before, while
the event loop goes on deciding the next ones. Under load a batch holds every decision that
arrived during the previous commit; alone, a decision is committed at once. The thread shares
the interpreter lock with the event loop, which is why the child process is the default.

A batch that fails is retried one decision at a time, so one unrecordable decision (a value
the database refuses) fails only its own request.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable
from typing import Generic, Protocol, TypeVar

from app.admission.record import (
    DecisionRecord,
    PreparedDecision,
    prepare,
    write_batch,
    write_prepared,
)
from app.db import Database

T = TypeVar("T")
_Entry = tuple[PreparedDecision, "asyncio.Future[None]", asyncio.AbstractEventLoop]
_Outcome = tuple["asyncio.Future[None]", BaseException | None]


class Recorder(Protocol):
    """Commits decisions before their answers leave: in a thread of the serving process
    (``DecisionRecorder``) or in a child process (``recorder_process.ProcessRecorder``)."""

    async def start(self) -> None: ...

    async def record(self, record: DecisionRecord) -> None: ...

    async def aclose(self) -> None: ...


class RecorderClosed(RuntimeError):
    """The process is shutting down: the decision cannot be recorded any more."""


class BatchQueue(Generic[T]):
    """Items queued by any thread, taken in batches by one consumer thread: whatever has
    arrived while it was busy, up to a limit."""

    def __init__(self) -> None:
        self._items: list[T] = []
        self._ready = threading.Condition()
        self._closed = False

    def put(self, items: Iterable[T]) -> bool:
        """Queue ``items``; False (and nothing queued) once the queue is closed."""
        with self._ready:
            if self._closed:
                return False
            self._items.extend(items)
            self._ready.notify()
            return True

    def close(self) -> None:
        """No more items: the consumer takes what is queued, then gets None."""
        with self._ready:
            self._closed = True
            self._ready.notify()

    def take(self, limit: int) -> list[T] | None:
        """Up to ``limit`` items, waiting for one; None once closed and empty."""
        with self._ready:
            while not self._items and not self._closed:
                self._ready.wait()
            if not self._items:
                return None
            batch = self._items[:limit]
            del self._items[:limit]
            return batch


class DecisionRecorder:
    def __init__(
        self,
        db: Database,
        *,
        max_batch: int = 200,
        save: Callable[[Database, list[PreparedDecision]], None] = write_prepared,
    ) -> None:
        self.db = db
        self.max_batch = max_batch
        self._save = save
        self._queue: BatchQueue[_Entry] = BatchQueue()
        self._thread: threading.Thread | None = None
        self._starting = threading.Lock()

    async def record(self, record: DecisionRecord) -> None:
        """Return once ``record`` is committed; raise what recording it raised."""
        # Rows, JSON and hashes are built here, in the caller's thread: the writer then needs
        # the interpreter lock only briefly per batch, instead of contending with the event
        # loop for it all along (each handover can cost the loop a whole switch interval).
        prepared = prepare(record)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._start_writer()
        if not self._queue.put([(prepared, future, loop)]):
            raise RecorderClosed("the server is shutting down")
        # A client that hangs up cancels only its wait: the decision stays queued and is recorded.
        await future

    def _start_writer(self) -> None:
        # Started on first use, in the serving process (never before a fork).
        with self._starting:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="provenant-decision-recorder", daemon=True
                )
                self._thread.start()

    async def start(self) -> None:
        """Nothing to do: the writer thread starts with the first decision."""

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    def close(self, timeout: float = 30.0) -> None:
        """Record what is queued, then stop."""
        self._queue.close()
        with self._starting:
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _run(self) -> None:
        while (batch := self._queue.take(self.max_batch)) is not None:
            self._settle(self._write(batch))

    def _write(self, batch: list[_Entry]) -> list[tuple[_Entry, BaseException | None]]:
        errors = write_batch(self.db, [prepared for prepared, _, _ in batch], self._save)
        return [(entry, errors[entry[0].id]) for entry in batch]

    @staticmethod
    def _settle(results: list[tuple[_Entry, BaseException | None]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
        for (_record, future, loop), error in results:
            by_loop.setdefault(loop, []).append((future, error))
        for loop, outcomes in by_loop.items():
            try:
                loop.call_soon_threadsafe(_resolve, outcomes)
            except RuntimeError:  # that loop is closed: nobody waits for these any more
                pass


def _resolve(outcomes: list[_Outcome]) -> None:
    for future, error in outcomes:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
