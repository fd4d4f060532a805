"""The active policy set: loaded at startup, swapped whole on reload; on error the last good
set stays active."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from app.policy.loader import (
    CompiledConfig,
    CompiledPolicy,
    LoadContext,
    LoadError,
    PolicyLoadError,
    load_policies,
)
from app.verification.trust import TrustStore

log = logging.getLogger("provenant.policy")


@dataclass(frozen=True)
class PolicySet:
    directory: Path
    content_hash: str  # sha256 over every file's relative path and bytes
    trust: TrustStore
    loaded_at: datetime
    policies: tuple[CompiledPolicy, ...] = ()
    config: CompiledConfig = field(default_factory=CompiledConfig)
    warnings: tuple[str, ...] = ()


def directory_hash(directory: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def load_policy_set(directory: Path) -> PolicySet:
    """Load trust and policies together; raise PolicyLoadError listing every problem."""
    if not directory.is_dir():
        raise FileNotFoundError(f"policy directory {directory} does not exist")
    # Hash first: a file edited while we load makes the hash older than the content, so the
    # next reload sees a change, never the other way round.
    content_hash = directory_hash(directory)
    errors: list[LoadError] = []
    trust: TrustStore | None = None
    try:
        trust = TrustStore.load(directory)
    except Exception as exc:  # key and trust-root loaders name the file in their message
        errors.append(LoadError(getattr(exc, "source", ""), "", None, str(exc)))
    context = LoadContext(
        directory=directory,
        trust_roots=frozenset(trust.roots) if trust else _builtin_roots(directory),
        ingest_keys=_ingest_keys(trust) if trust else None,
    )
    try:
        loaded = load_policies(context)
    except PolicyLoadError as exc:
        raise PolicyLoadError(errors + exc.errors) from None
    if errors or trust is None:
        raise PolicyLoadError(errors)
    return PolicySet(
        directory=directory,
        content_hash=content_hash,
        trust=trust,
        loaded_at=datetime.now(UTC),
        policies=loaded.policies,
        config=loaded.config,
        warnings=loaded.warnings,
    )


def _builtin_roots(directory: Path) -> frozenset[str]:
    # Trust roots failed to load: still judge trustRoot names against what should exist, so
    # the one load reports policy errors too.
    names = {"public-good", "staging"}
    trust_dir = directory / "trust"
    if trust_dir.is_dir():
        names.update(p.stem for p in trust_dir.glob("*.json"))
    return frozenset(names)


def _ingest_keys(trust: TrustStore) -> frozenset[bytes]:
    from cryptography.hazmat.primitives import serialization

    return frozenset(
        key.public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        for key in trust.keys.values()
    )


@dataclass(frozen=True)
class PolicyLoad:
    """One attempt to load the policy directory, as the audit log records it."""

    trigger: str  # startup | sighup | api
    actor: str
    directory: Path
    previous_hash: str | None  # the set active before
    content_hash: str | None  # the set loaded; None when the load failed
    errors: tuple[LoadError, ...] = ()
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.content_hash is None


class PolicyStore:
    """Holds the active set; readers take ``.active`` once per request and use that snapshot."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.active: PolicySet | None = None
        self.last_error: str | None = None
        self.last_errors: list[LoadError] = []  # structured, for the reload API
        # Called with each newly loaded set (the admission decision cache clears itself).
        self.listeners: list[Callable[[PolicySet], object]] = []
        # Called with every load attempt, before a loaded set becomes active (the audit log
        # records it there: a set whose load could not be recorded is never enforced).
        self.recorders: list[Callable[[PolicyLoad], object]] = []
        self._lock = threading.Lock()

    def reload(self, trigger: str = "api", actor: str = "system") -> PolicySet | None:
        """Load the directory; on success the new set is active, on failure the last good set
        stays. Either way each recorder is told first; a recorder's exception (after startup)
        propagates and leaves the active set as it was."""
        with self._lock:
            previous = self.active.content_hash if self.active else None
            try:
                loaded = load_policy_set(self.directory)
            except Exception as exc:  # any bad file keeps the last good set
                errors = exc.errors if isinstance(exc, PolicyLoadError) else []
                message = f"{type(exc).__name__}: {exc}"
                self._record(
                    PolicyLoad(
                        trigger, actor, self.directory, previous, None, tuple(errors), message
                    )
                )
                self.last_errors = errors
                self.last_error = message
                kept = previous[:12] if previous else "none"
                log.error(
                    "policy load from %s failed, keeping last good set (%s): %s",
                    self.directory,
                    kept,
                    self.last_error,
                )
                return self.active
            self._record(PolicyLoad(trigger, actor, self.directory, previous, loaded.content_hash))
            try:
                self.active = loaded
                self.last_error = None
                self.last_errors = []
                log.info(
                    "policy set %s loaded from %s: %d policies",
                    self.active.content_hash[:12],
                    self.directory,
                    len(self.active.policies),
                )
                for warning in self.active.warnings:
                    log.warning("policy warning: %s", warning)
                for listener in self.listeners:
                    listener(self.active)
            except Exception:
                log.exception("a policy listener failed after loading %s", self.directory)
            return self.active

    def _record(self, load: PolicyLoad) -> None:
        for recorder in self.recorders:
            try:
                recorder(load)
            except Exception:
                if load.trigger != "startup":
                    raise
                # The process must start (readiness then reports the database): nothing is
                # decided without the database, which records each decision's policy hash.
                log.exception("policy load at startup could not be recorded in the audit log")


def install_sighup_reload(store: PolicyStore) -> bool:
    """Reload ``store`` on SIGHUP. Call it from the app's lifespan startup (inside the event
    loop); returns False where signals cannot be installed (not the main thread, Windows).

    The reload runs on a worker thread: it reads files and compiles CEL, which must not stall
    the event loop, and a signal handler must not take the store's lock itself.
    """
    if not hasattr(signal, "SIGHUP") or threading.current_thread() is not threading.main_thread():
        return False

    def reload() -> None:
        try:
            store.reload(trigger="sighup", actor="signal:SIGHUP")
        except Exception:
            log.exception("policy reload on SIGHUP could not be recorded; the active set stays")

    def reload_in_background() -> None:
        threading.Thread(target=reload, name="policy-reload", daemon=True).start()

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        signal.signal(signal.SIGHUP, lambda _signum, _frame: reload_in_background())
        return True
    try:
        loop.add_signal_handler(signal.SIGHUP, reload_in_background)
    except (NotImplementedError, RuntimeError):
        return False
    return True
