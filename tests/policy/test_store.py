"""Reload: a bad directory keeps the last good set, and says so; SIGHUP reloads."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from app.policy.store import PolicyStore, install_sighup_reload
from tests.policy.helpers import policy, write


def test_reload_with_a_bad_file_keeps_the_last_good_set(
    policy_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(policy_dir, "a.yaml", policy("a"))
    store = PolicyStore(policy_dir)
    good = store.reload()
    assert good is not None and [p.name for p in good.policies] == ["a"]

    write(policy_dir, "b.yaml", policy("b", images='["[broken"]'))
    assert store.reload() is good
    assert store.active is good
    assert store.last_error is not None and "b.yaml:5: spec.images[0]" in store.last_error
    assert [e.file for e in store.last_errors] == ["b.yaml"]
    assert "keeping last good set" in caplog.text

    (policy_dir / "b.yaml").unlink()
    fixed = store.reload()
    assert fixed is not None and fixed is not good
    assert store.last_error is None and store.last_errors == []


def test_first_load_failure_leaves_no_set(policy_dir: Path) -> None:
    write(policy_dir, "a.yaml", "kind: [")
    store = PolicyStore(policy_dir)
    assert store.reload() is None
    assert store.last_error is not None and "invalid YAML" in store.last_error


def test_missing_directory_is_an_error(tmp_path: Path) -> None:
    store = PolicyStore(tmp_path / "absent")
    assert store.reload() is None
    assert store.last_error is not None and "does not exist" in store.last_error


def test_content_hash_changes_with_any_file(policy_dir: Path) -> None:
    write(policy_dir, "a.yaml", policy("a"))
    store = PolicyStore(policy_dir)
    first = store.reload()
    write(policy_dir, "README.md", "notes")
    second = store.reload()
    assert first is not None and second is not None
    assert first.content_hash != second.content_hash


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
def test_sighup_reloads_without_an_event_loop(policy_dir: Path) -> None:
    write(policy_dir, "a.yaml", policy("a"))
    store = PolicyStore(policy_dir)
    store.reload()
    previous = signal.getsignal(signal.SIGHUP)
    try:
        assert install_sighup_reload(store)
        write(policy_dir, "b.yaml", policy("b"))
        os.kill(os.getpid(), signal.SIGHUP)
        assert wait_for(lambda: store.active is not None and len(store.active.policies) == 2)
    finally:
        signal.signal(signal.SIGHUP, previous)


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
def test_sighup_reloads_inside_the_event_loop(policy_dir: Path) -> None:
    write(policy_dir, "a.yaml", policy("a"))
    store = PolicyStore(policy_dir)
    store.reload()

    async def scenario() -> bool:
        loop = asyncio.get_running_loop()
        assert install_sighup_reload(store)
        try:
            write(policy_dir, "b.yaml", policy("b"))
            os.kill(os.getpid(), signal.SIGHUP)
            for _ in range(250):
                await asyncio.sleep(0.02)
                if store.active is not None and len(store.active.policies) == 2:
                    return True
            return False
        finally:
            loop.remove_signal_handler(signal.SIGHUP)

    assert asyncio.run(scenario())
