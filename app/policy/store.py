"""The active policy set: loaded at startup, swapped whole on reload; on error the last good
set stays active."""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from app.verification.trust import TrustStore

log = logging.getLogger("provenant.policy")


@dataclass(frozen=True)
class PolicySet:
    directory: Path
    content_hash: str  # sha256 over every file's relative path and bytes
    trust: TrustStore
    loaded_at: datetime


def directory_hash(directory: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def load_policy_set(directory: Path) -> PolicySet:
    if not directory.is_dir():
        raise FileNotFoundError(f"policy directory {directory} does not exist")
    return PolicySet(
        directory=directory,
        content_hash=directory_hash(directory),
        trust=TrustStore.load(directory),
        loaded_at=datetime.now(UTC),
    )


class PolicyStore:
    """Holds the active set; readers take ``.active`` once per request and use that snapshot."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.active: PolicySet | None = None
        self.last_error: str | None = None
        self._lock = threading.Lock()

    def reload(self) -> PolicySet | None:
        with self._lock:
            try:
                self.active = load_policy_set(self.directory)
                self.last_error = None
                log.info(
                    "policy set %s loaded from %s", self.active.content_hash[:12], self.directory
                )
            except Exception as exc:  # any bad file keeps the last good set
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.error(
                    "policy load from %s failed, keeping last good set: %s",
                    self.directory,
                    self.last_error,
                )
            return self.active
