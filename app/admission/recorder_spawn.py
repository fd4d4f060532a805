"""Starting the decision recorder child, importing nothing heavy (see recorder_process).

The child spends about a second importing before it can record. ``provenant serve`` calls
``prespawn`` before it imports the app, so that second overlaps the server's own imports rather
than following them; the app's recorder then adopts that child (``take_prespawned``) instead of
starting one. Nothing else changes: a child that dies is replaced by a fresh start, as before.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

MAX_BATCH = 200

_prespawned: tuple[str, subprocess.Popen[bytes], socket.socket] | None = None


def spawn(
    database_url: str, max_batch: int = MAX_BATCH
) -> tuple[subprocess.Popen[bytes], socket.socket]:
    """The child process and the parent's end of its socket."""
    parent, child = socket.socketpair()
    try:
        command = [sys.executable, "-m", "app.admission.recorder_process"]
        command += ["--fd", str(child.fileno()), "--max-batch", str(max_batch)]
        process = subprocess.Popen(
            command,
            pass_fds=(child.fileno(),),
            env={**os.environ, "PROVENANT_DATABASE_URL": database_url},
        )
    except BaseException:
        parent.close()
        raise
    finally:
        child.close()
    return process, parent


def prespawn(database_url: str) -> None:
    """Start the child for the app this process is about to serve."""
    global _prespawned
    if _prespawned is None:
        process, parent = spawn(database_url)
        _prespawned = (database_url, process, parent)


def take_prespawned(
    database_url: str, max_batch: int
) -> tuple[subprocess.Popen[bytes], socket.socket] | None:
    """The prespawned child, once, if it was started for this database and batch size."""
    global _prespawned
    if _prespawned is None:
        return None
    url, process, parent = _prespawned
    _prespawned = None
    if url != database_url or max_batch != MAX_BATCH or process.poll() is not None:
        parent.close()  # EOF: that child exits
        return None
    return process, parent
