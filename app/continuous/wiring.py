"""Building the watcher from settings, and the hooks ``app.main`` registers with lower packages.

The watcher's modules (and the Kubernetes client) are imported only when a watcher is built:
every server process imports this module, most never run a watcher.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.continuous.queries import affected_by
from app.db import Database
from app.policy.store import PolicyStore
from app.settings import Settings

if TYPE_CHECKING:
    from app.continuous.service import ContinuousValidator


def build_validator(
    settings: Settings, db: Database, policies: PolicyStore, *, standalone: bool = False
) -> ContinuousValidator:
    from app.continuous.kube import kube_client
    from app.continuous.notify import load_endpoints
    from app.continuous.runner import Options
    from app.continuous.service import ContinuousValidator, Election

    election = (
        Election(settings.continuous_lease_namespace, settings.continuous_lease_name)
        if settings.continuous_lease_namespace
        else None
    )
    return ContinuousValidator(
        db,
        policies,
        lambda: kube_client(settings.kubeconfig),
        options=Options(
            cluster=settings.continuous_cluster,
            interval=settings.continuous_interval,
            poll=settings.continuous_poll,
            # A watcher process of its own sees policy edits by their files; inside the server,
            # the store's reload listener tells it.
            policy_poll=10.0 if standalone else None,
        ),
        endpoints=load_endpoints(settings.notifications_file),
        election=election,
    )


class RevocationHook:
    """For the revoke endpoint: the running workloads a revocation touches, and (with a watcher
    in this process) their re-evaluation at once rather than at the next poll."""

    def __init__(self, db: Database, validator: ContinuousValidator | None = None) -> None:
        self.db = db
        self.validator = validator

    def __call__(self, digests: list[str]) -> list[dict[str, Any]]:
        if self.validator is not None:
            self.validator.digests_changed(digests)
        with self.db.session() as session:
            return [w.model_dump() for w in affected_by(session, digests)]
