"""Every policy load (startup, SIGHUP, the reload API) is one audit event carrying the
policy-set hash: an audit product records every change of what it enforces."""

from __future__ import annotations

from collections.abc import Callable

from app.audit.service import record_event
from app.db import Database
from app.policy.store import PolicyLoad

_TYPES = {
    (True, False): "policies.loaded",  # startup
    (True, True): "policies.load_failed",
    (False, False): "policies.reloaded",  # SIGHUP or the API
    (False, True): "policies.reload_failed",
}


def event_type(load: PolicyLoad) -> str:
    return _TYPES[(load.trigger == "startup", load.failed)]


def recorder(db: Database) -> Callable[[PolicyLoad], None]:
    """A ``PolicyStore.recorders`` entry writing each load to ``db``'s audit log."""

    def record(load: PolicyLoad) -> None:
        with db.session() as session:
            record_event(
                session,
                event_type(load),
                load.actor,
                {
                    "trigger": load.trigger,
                    "directory": str(load.directory),
                    "previous_hash": load.previous_hash,
                    # The set enforced from now on: the new one, or the one kept on failure.
                    "content_hash": load.content_hash or load.previous_hash,
                    "loaded": not load.failed,
                    "errors": [e.as_dict() for e in load.errors],
                    "error": load.error,
                },
            )

    return record
