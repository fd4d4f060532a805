"""Recording decisions in a child process, for ``provenant serve``.

A decision's answer leaves only once the decision and its audit event are committed. Building
their rows (copies, canonical hashes, JSON) and writing them is Python work, and in a thread of
the serving process it competes with the event loop for the interpreter lock: on two cores the
webhook then ran at half the speed of the same work without recording. Here the serving process
hands each decision over as plain data (``record.to_message``) on a socket, and one child
process per serving process builds the rows and commits them, group-committing whatever
arrived while it was busy, then acknowledges each decision by id.

If the child dies, every decision waiting on it fails (its request is refused as "not
recorded", never admitted unrecorded) and the next decision starts a new child.

Wire format, both ways: a 4-byte big-endian length, then that many bytes. Parent to child: one
decision, ``record.encode(to_message(...))``. Child to parent, JSON:
``{"ok": [ids], "failed": [[id, error]]}``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import struct
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import orjson
from sqlalchemy import event

from app.admission.record import (
    DecisionMessage,
    DecisionRecord,
    PreparedDecision,
    decode,
    encode,
    prepare_message,
    to_message,
    write_batch,
)
from app.admission.recorder import BatchQueue
from app.admission.recorder_spawn import MAX_BATCH, spawn, take_prespawned
from app.db import Database
from app.gc_tuning import tune_gc

log = logging.getLogger("provenant.admission")

_HEADER = struct.Struct(">I")
_START_TIMEOUT = 60.0


class RecorderUnavailable(RuntimeError):
    """The recorder process is gone (or the server is shutting down)."""


class RecordingFailed(RuntimeError):
    """The recorder could not write this decision; the message says why."""


# Parent side ------------------------------------------------------------------------------------


class ProcessRecorder:
    """The serving process's end: same interface as ``recorder.DecisionRecorder``."""

    def __init__(self, database_url: str, *, max_batch: int = MAX_BATCH) -> None:
        self.database_url = database_url
        self.max_batch = max_batch
        self._process: subprocess.Popen[bytes] | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._pending: dict[str, asyncio.Future[None]] = {}
        # Frames waiting for the end of this turn of the event loop, and the child they are for.
        self._outbox: list[bytes] = []
        self._outbox_writer: asyncio.StreamWriter | None = None
        self._starting = asyncio.Lock()
        self._closed = False
        self.recorded = 0
        self.restarts = -1  # the first start is not a restart

    async def record(self, record: DecisionRecord) -> None:
        """Return once ``record`` is committed; raise if it could not be."""
        message = encode(to_message(record))
        writer = await self._ensure_started()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending[record.id] = future
        self._send(writer, _HEADER.pack(len(message)) + message)
        # A client that hangs up cancels only its wait: the decision is still recorded.
        await future

    def _send(self, writer: asyncio.StreamWriter, frame: bytes) -> None:
        """Queue ``frame``; every frame queued in one turn of the event loop goes in one write.
        Under load one turn decides many requests, and a write per decision (a system call, and
        a wake-up of the child) cost the event loop a tenth of its time."""
        if not self._outbox:
            self._outbox_writer = writer
            asyncio.get_running_loop().call_soon(self._flush)
        self._outbox.append(frame)

    def _flush(self) -> None:
        frames, self._outbox = self._outbox, []
        # A child that died meanwhile took these decisions' futures with it (they were failed);
        # its successor must not write decisions whose requests were already refused.
        if frames and self._outbox_writer is self._writer and self._writer is not None:
            self._writer.write(b"".join(frames))

    async def start(self) -> None:
        """Start the child now (server startup), rather than on the first decision: its imports
        take about a second, which no admission should wait for."""
        await self._ensure_started()

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    async def _ensure_started(self) -> asyncio.StreamWriter:
        if self._closed:
            raise RecorderUnavailable("the server is shutting down")
        # The writer is dropped when the child's socket closes (``_read_acks``), which is how a
        # dead child shows: no process poll per decision.
        if self._writer is not None:
            return self._writer
        async with self._starting:
            if self._writer is None:
                await self._start()
        assert self._writer is not None
        return self._writer

    async def _start(self) -> None:
        await self._stop_child()
        started = None if self.restarts >= 0 else take_prespawned(self.database_url, self.max_batch)
        self._process, parent = started or spawn(self.database_url, self.max_batch)
        reader, writer = await asyncio.open_connection(sock=parent)
        try:
            # The child says it is ready once imported: decisions never queue behind its start.
            await asyncio.wait_for(_read_frame(reader), _START_TIMEOUT)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, OSError) as exc:
            writer.close()
            raise RecorderUnavailable(f"the decision recorder did not start: {exc!r}") from exc
        self._writer = writer
        self._reader_task = asyncio.create_task(self._read_acks(reader))
        self.restarts += 1
        if self.restarts:
            log.warning("decision recorder restarted (%d restarts)", self.restarts)

    async def _read_acks(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                ack = await _read_frame(reader)
                for decision_id in ack["ok"]:
                    self.recorded += 1
                    _settle(self._pending.pop(decision_id, None), None)
                for decision_id, error in ack["failed"]:
                    _settle(self._pending.pop(decision_id, None), RecordingFailed(error))
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            self._writer = None
            pending, self._pending = self._pending, {}
            if pending:
                log.error("decision recorder exited with %d decisions unacknowledged", len(pending))
            for future in pending.values():
                _settle(future, RecorderUnavailable("the decision recorder process exited"))

    async def aclose(self, timeout: float = 30.0) -> None:
        """Wait for what was sent to be acknowledged, then stop the child."""
        self._closed = True
        pending = [f for f in self._pending.values() if not f.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout)
        await self._stop_child(timeout)

    async def _stop_child(self, timeout: float = 10.0) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()  # EOF: the child writes what it has and exits
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
        process, self._process = self._process, None
        if process is not None:
            try:
                await asyncio.to_thread(process.wait, timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                await asyncio.to_thread(process.wait)
        if self._reader_task is not None:
            await asyncio.gather(self._reader_task, return_exceptions=True)
            self._reader_task = None

    def close(self) -> None:
        """For a caller without an event loop: stop the child without waiting for acks."""
        self._closed = True
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()


async def _read_frame(reader: asyncio.StreamReader) -> dict[str, Any]:
    header = await reader.readexactly(_HEADER.size)
    return orjson.loads(await reader.readexactly(_HEADER.unpack(header)[0]))  # type: ignore[no-any-return]


def _settle(future: asyncio.Future[None] | None, error: BaseException | None) -> None:
    if future is None or future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


# Child side -------------------------------------------------------------------------------------


def serve(sock: socket.socket, db: Database, max_batch: int = MAX_BATCH) -> None:
    """Read decisions until EOF; commit each batch that is waiting; acknowledge by id.

    A reader thread decodes and prepares decisions (rows, canonical hashes) while this thread
    commits the previous batch: the database's I/O then overlaps with the Python work instead of
    adding to it, and the next batch is ready when the commit returns."""
    sock.sendall(_frame({"ready": True}))
    inbox: BatchQueue[_Item] = BatchQueue()
    reader = threading.Thread(
        target=_read, args=(sock, inbox), name="provenant-recorder-reader", daemon=True
    )
    reader.start()
    while (batch := inbox.take(max_batch)) is not None:
        sock.sendall(_frame(_write(db, batch)))
    reader.join()


# A decision prepared for writing, or the id and error of one that could not be.
_Item = PreparedDecision | tuple[str, str]


def _read(sock: socket.socket, inbox: BatchQueue[_Item]) -> None:
    buffer = bytearray()
    try:
        while data := sock.recv(1 << 20):  # block until something arrives
            buffer += data
            # Then take whatever else is already there, without waiting.
            eof = False
            while True:
                try:
                    data = sock.recv(1 << 20, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    break
                eof = not data
                if eof:
                    break
                buffer += data
            inbox.put([_prepare(message) for message in _take_messages(buffer)])
            if eof:
                break
    except OSError:
        pass  # the parent is gone: what was read is still written
    finally:
        inbox.close()


def _complete_message(buffer: bytearray) -> bool:
    if len(buffer) < _HEADER.size:
        return False
    return len(buffer) >= _HEADER.size + _HEADER.unpack_from(buffer)[0]


def _take_messages(buffer: bytearray) -> list[bytes]:
    messages = []
    while _complete_message(buffer):
        size = _HEADER.unpack_from(buffer)[0]
        messages.append(bytes(buffer[_HEADER.size : _HEADER.size + size]))
        del buffer[: _HEADER.size + size]
    return messages


def _prepare(data: bytes) -> _Item:
    message: DecisionMessage | None = None
    try:
        message = decode(data)
        return prepare_message(message)
    except Exception as exc:  # a payload the audit log refuses: this decision only
        decision_id = message.header.get("id", "") if message is not None else ""
        return (str(decision_id), f"{type(exc).__name__}: {exc}")


def _write(db: Database, batch: list[_Item]) -> dict[str, Any]:
    prepared = [item for item in batch if isinstance(item, PreparedDecision)]
    failed = [list(item) for item in batch if not isinstance(item, PreparedDecision)]
    ok = []
    for decision_id, error in write_batch(db, prepared).items():
        if error is None:
            ok.append(decision_id)
        else:
            failed.append([decision_id, f"{type(error).__name__}: {error}"])
    return {"ok": ok, "failed": failed}


_CHECKPOINT_INTERVAL = 0.1


@contextlib.contextmanager
def _checkpointing(db: Database) -> Iterator[None]:
    """On SQLite, move WAL checkpoints off the commit path.

    By default the connection whose commit fills the WAL past 1000 pages copies them into the
    database file and syncs it, inside that commit: every few batches a commit stalled for the
    disk while decisions waited. Here the recorder's connections never checkpoint; a thread
    does, every 0.1 s, in PASSIVE mode (it never blocks the writer, and the sqlite3 module
    releases the interpreter lock meanwhile). Other processes keep SQLite's default."""
    if db.dialect != "sqlite":
        yield
        return
    event.listen(db.engine, "connect", _no_autocheckpoint)
    db.engine.dispose()  # connections opened before this listener existed
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(_CHECKPOINT_INTERVAL):
            try:
                with db.engine.connect() as connection:
                    connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
            except Exception:  # the next one may succeed; the writer is not affected
                log.warning("WAL checkpoint failed", exc_info=True)

    thread = threading.Thread(target=run, name="provenant-recorder-checkpoint", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        with contextlib.suppress(Exception), db.engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")


def _no_autocheckpoint(dbapi_connection: Any, _record: object) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()


def _frame(ack: dict[str, Any]) -> bytes:
    data = orjson.dumps(ack)
    return _HEADER.pack(len(data)) + data


def main() -> None:
    parser = argparse.ArgumentParser(description="Provenant's decision recorder (internal)")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--max-batch", type=int, default=MAX_BATCH)
    args = parser.parse_args()
    logging.basicConfig(
        level=os.environ.get("PROVENANT_LOG_LEVEL", "info").upper(),
        format="%(asctime)s %(levelname)s %(name)s (recorder): %(message)s",
    )
    # The serving process decides when this one stops (EOF on the socket, after a drain): a
    # Ctrl-C or SIGTERM sent to the whole process group must not drop decisions mid-batch.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sock = socket.socket(fileno=args.fd)
    db = Database(os.environ["PROVENANT_DATABASE_URL"], pool_size=1)
    tune_gc()
    try:
        with _checkpointing(db):
            serve(sock, db, args.max_batch)
    finally:
        db.dispose()
        sock.close()


if __name__ == "__main__":
    main()
