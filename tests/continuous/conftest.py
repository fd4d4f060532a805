"""A watcher's parts over the test database, without a cluster: the inventory is fed Pods
directly (tests/continuous/test_kube.py feeds it from a real kube-apiserver)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.continuous.findings import FindingStore
from app.continuous.inventory import Inventory, Workload, running_pod
from app.continuous.notify import Endpoint, Notifier
from app.continuous.runner import Evaluator, Options
from tests.admission.conftest import policy_dir, reader, uploader  # noqa: F401 - fixtures
from tests.continuous.helpers import FakeClock


def resolve(namespace: str, kind: str, name: str) -> Workload:
    if kind == "ReplicaSet":
        return Workload("Deployment", name.rsplit("-", 1)[0])
    return Workload(kind, name)


@dataclass
class Watcher:
    """The evaluator, store and notifier of a watcher, stepped by the test."""

    inventory: Inventory
    store: FindingStore
    evaluator: Evaluator
    notifier: Notifier
    clock: FakeClock

    def run(self, *pods: dict[str, Any]) -> None:
        for obj in pods:
            running = running_pod(obj, resolve)
            assert running is not None
            self.evaluator.keys_changed(self.inventory.put(running))

    def delete(self, uid: str) -> None:
        self.evaluator.keys_changed(self.inventory.remove(uid))

    def step(self) -> int:
        return self.evaluator.step()


@pytest.fixture
def endpoints() -> list[Endpoint]:
    return []


@pytest.fixture
def watcher(client: TestClient, endpoints: list[Endpoint]) -> Iterator[Watcher]:
    app: Any = client.app
    db, policies = app.state.db, app.state.policies
    inventory = Inventory()
    store = FindingStore(db, "test", endpoints)
    store.load()
    synced = threading.Event()
    synced.set()
    clock = FakeClock()
    notifier = Notifier(db, endpoints)
    evaluator = Evaluator(
        db, policies, inventory, store, clock=clock, options=Options(cluster="test"), synced=synced
    )
    policies.listeners.append(evaluator.policies_reloaded)
    yield Watcher(inventory, store, evaluator, notifier, clock)
    notifier.close()
