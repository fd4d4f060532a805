"""``ContinuousValidator``: the watcher's threads, started by ``provenant watch`` or inside
``provenant serve`` (PROVENANT_CONTINUOUS_ENABLED).

While it leads (always, without election): a Pod watch thread feeding the inventory, an
evaluation thread, and a notification thread. Losing the Lease stops all three and clears the
inventory; the candidate then waits to lead again.
"""

from __future__ import annotations

import logging
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from lightkube import Client

from app.continuous.findings import FindingStore
from app.continuous.inventory import Inventory
from app.continuous.kube import PodWatcher
from app.continuous.leader import LeaderElector
from app.continuous.notify import Endpoint, Notifier
from app.continuous.runner import Clock, Evaluator, Options, SystemClock
from app.db import Database
from app.policy.store import PolicyStore

log = logging.getLogger("provenant.continuous")


@dataclass
class Election:
    namespace: str
    name: str = "provenant-watcher"
    identity: str = ""
    duration: float = 15.0
    renew: float = 5.0

    def __post_init__(self) -> None:
        self.identity = self.identity or f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"


class ContinuousValidator:
    def __init__(
        self,
        db: Database,
        policies: PolicyStore,
        client_factory: Callable[[], Client],
        *,
        options: Options | None = None,
        endpoints: list[Endpoint] | None = None,
        clock: Clock | None = None,
        election: Election | None = None,
    ) -> None:
        self.db = db
        self.policies = policies
        self.client_factory = client_factory
        self.options = options or Options()
        self.endpoints = endpoints or []
        self.clock = clock or SystemClock()
        self.election = election
        self.inventory = Inventory()
        self.synced = threading.Event()
        self.store = FindingStore(db, self.options.cluster, self.endpoints)
        self.notifier = Notifier(db, self.endpoints)
        self.evaluator = Evaluator(
            db,
            policies,
            self.inventory,
            self.store,
            clock=self.clock,
            options=self.options,
            synced=self.synced,
            on_transitions=self.notifier.wake.set,
        )
        self.watcher: PodWatcher | None = None
        self.elector: LeaderElector | None = None
        self.leading = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # Hooks for the app: a reload or a revocation in this process, seen at once.
    def policies_reloaded(self, policy_set: object = None) -> None:
        self.evaluator.policies_reloaded()

    def digests_changed(self, digests: list[str]) -> None:
        self.evaluator.digests_changed(digests)

    def start(self) -> ContinuousValidator:
        self._thread = threading.Thread(target=self.run, name="continuous", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.notifier.close()

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self._run()
                return
            except Exception:
                # No cluster configuration, or the apiserver refused us: the API keeps serving,
                # and the watcher tries again.
                log.exception("continuous validation stopped; retrying in 10 s")
                self._stop.wait(10)

    def _run(self) -> None:
        client = self.client_factory()
        try:
            if self.election is not None:
                e = self.election
                self.elector = LeaderElector(
                    client, e.namespace, e.name, e.identity, duration=e.duration, renew=e.renew
                )
            while not self._stop.is_set():
                if self.elector is not None and not self.elector.acquire(self._stop):
                    break
                self._lead(client)
        finally:
            if self.elector is not None:
                self.elector.release()
            client.close()

    def _lead(self, client: Client) -> None:
        lead_stop = threading.Event()
        self.store.load()
        self.inventory = self.evaluator.inventory = Inventory()
        self.synced.clear()
        # The watch gets a client of its own: a watch holds its connection for minutes.
        watch_client = self.client_factory()
        self.watcher = PodWatcher(watch_client, self.inventory, self.evaluator.keys_changed)
        self.watcher.synced = self.synced
        threads = [
            threading.Thread(
                target=self.watcher.run, args=(lead_stop,), name="continuous-watch", daemon=True
            ),
            threading.Thread(
                target=self.evaluator.run,
                args=(lead_stop,),
                name="continuous-evaluate",
                daemon=True,
            ),
            threading.Thread(
                target=self.notifier.run, args=(lead_stop,), name="continuous-notify", daemon=True
            ),
        ]
        for thread in threads:
            thread.start()
        self.leading.set()
        try:
            if self.elector is not None:
                self.elector.hold(self._stop)
            else:
                self._stop.wait()
        finally:
            self.leading.clear()
            lead_stop.set()
            self.evaluator.full("stopping")  # wakes the evaluation thread
            self.notifier.wake.set()
            watch_client.close()  # ends the watch's read at once
            for thread in threads:
                thread.join(10)
