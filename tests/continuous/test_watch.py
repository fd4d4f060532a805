"""The watch loop's recovery paths that a healthy test apiserver does not produce on demand:
410 Gone (the resourceVersion was compacted away) relists, and the relist drops the Pods deleted
while nobody watched. The real apiserver's list, watch and resume are in test_kube.py; here a
stand-in client replays what the apiserver sends."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from lightkube import ApiError
from lightkube.models.meta_v1 import Status

from app.continuous.inventory import Inventory
from app.continuous.kube import PodWatcher
from tests.continuous.helpers import image, pod


class Listing(list[Any]):
    resourceVersion: str = ""


class Replay:
    """Lists what ``pods`` holds; each watch call plays its script of events or raises."""

    def __init__(self, pods: list[dict[str, Any]], watches: list[Any], stop: threading.Event):
        self.pods = pods
        self.watches = watches
        self.stop = stop
        self.watched_from: list[str | None] = []

    def list(self, _res: Any, **_kwargs: Any) -> Listing:
        listing = Listing(self.pods)
        listing.resourceVersion = str(100 + len(self.watched_from))
        return listing

    def watch(self, _res: Any, *, resource_version: str | None, **_kwargs: Any) -> Iterator[Any]:
        self.watched_from.append(resource_version)
        script = self.watches.pop(0) if self.watches else None
        if script is None:
            self.stop.set()
            return
        if isinstance(script, Exception):
            raise script
        yield from script


def with_version(obj: dict[str, Any], version: str) -> dict[str, Any]:
    obj["metadata"]["resourceVersion"] = version
    return obj


def test_gone_relists_and_the_relist_drops_pods_deleted_meanwhile() -> None:
    stop = threading.Event()
    a, b = pod("a", image("a"), uid="a"), pod("b", image("b"), uid="b")
    c = with_version(pod("c", image("c"), uid="c"), "105")
    gone = ApiError(status=Status(code=410, message="too old resource version"))
    client = Replay([a, b], [[("ADDED", c)], gone], stop)
    inventory = Inventory()
    changes: list[set[Any]] = []
    watcher = PodWatcher(client, inventory, changes.append, retry_seconds=0)  # type: ignore[arg-type]

    # While the watch is down, "a" is deleted: only the relist can tell.
    def delete_a_then_watch() -> None:
        client.pods = [b, c]

    original = client.watch

    def watch(*args: Any, **kwargs: Any) -> Iterator[Any]:
        if len(client.watched_from) == 1:
            delete_a_then_watch()
        return original(*args, **kwargs)

    client.watch = watch  # type: ignore[method-assign]
    watcher.run(stop)

    assert watcher.relists == 2
    # Resumed from the listed version, then from the last event's; after 410, from the relist's.
    assert client.watched_from == ["100", "105", "102"]
    assert {k.workload_name for k in inventory.counts()} == {"b", "c"}
