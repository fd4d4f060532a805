"""`provenant serve` starts the recorder child before importing the app; the app adopts it once,
for the same database only, and an unadopted child exits."""

from __future__ import annotations

from app.admission import recorder_spawn
from app.admission.recorder_spawn import MAX_BATCH, prespawn, take_prespawned


def test_prespawned_child_is_adopted_once_for_its_database(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/a.db"
    prespawn(url)
    adopted = take_prespawned(url, MAX_BATCH)
    assert adopted is not None
    process, sock = adopted
    assert take_prespawned(url, MAX_BATCH) is None  # once
    sock.settimeout(60)
    assert b"ready" in sock.recv(4096)  # it came up on the database it was started for
    sock.close()  # EOF: the child finishes and exits
    assert process.wait(60) == 0


def test_a_child_for_another_database_is_not_adopted_and_exits(tmp_path) -> None:
    prespawn(f"sqlite:///{tmp_path}/a.db")
    _, process, _ = recorder_spawn._prespawned  # type: ignore[misc]
    assert take_prespawned(f"sqlite:///{tmp_path}/b.db", MAX_BATCH) is None
    process.wait(60)  # its socket is closed: it exits (without recording anything)
    assert recorder_spawn._prespawned is None
