"""The Kubernetes side of the watcher, through lightkube: configuration, the owner chain, and
list-then-watch of Pods with resourceVersion resume.

lightkube was chosen over the official ``kubernetes`` client (and kubernetes-asyncio, kr8s):
it is maintained, small, built on httpx2 (pydantic's continuation of httpx, Provenant's HTTP
client), reads kubeconfig
files and in-cluster service-account config alike, and decodes with msgspec, which matters for
a watcher holding 10,000 Pods. The official client pulls in its own HTTP stack and thousands of
generated model classes and decodes every object into them. Objects are read here as plain
dicts (lightkube's generic resources), since only a handful of fields are used.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
from lightkube import ApiError, Client, KubeConfig
from lightkube.generic_resource import create_namespaced_resource

from app.continuous.inventory import Inventory, RunningPod, Workload, running_pod

log = logging.getLogger("provenant.continuous")

Pod = create_namespaced_resource("", "v1", "Pod", "pods")
ReplicaSet = create_namespaced_resource("apps", "v1", "ReplicaSet", "replicasets")
Job = create_namespaced_resource("batch", "v1", "Job", "jobs")
Lease = create_namespaced_resource("coordination.k8s.io", "v1", "Lease", "leases")

# Owners whose own controller is the workload: a ReplicaSet belongs to a Deployment, a Job to
# a CronJob. Anything else is the workload itself.
_INTERMEDIATE = {"ReplicaSet": ReplicaSet, "Job": Job}
# The server ends a watch after this long; reconnecting is cheap and proves the link is alive.
WATCH_SECONDS = 300


def kube_client(kubeconfig: Path | None = None, *, timeout: float = 10.0) -> Client:
    """From a kubeconfig file when one is named; otherwise in-cluster service-account config,
    then $KUBECONFIG or ~/.kube/config (lightkube's order)."""
    config = KubeConfig.from_file(kubeconfig) if kubeconfig else KubeConfig.from_env()
    # A watch reads for up to WATCH_SECONDS; the read timeout must outlast it.
    return Client(
        config,
        timeout=httpx2.Timeout(timeout, read=WATCH_SECONDS + 30),
        field_manager="provenant",
    )


class OwnerResolver:
    """Follows a Pod's controller up to its workload, caching each intermediate owner (a
    Deployment's ReplicaSets change only on rollouts)."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self._cache: dict[tuple[str, str, str], Workload] = {}
        self._lock = threading.Lock()

    def __call__(self, namespace: str, kind: str, name: str) -> Workload:
        resource = _INTERMEDIATE.get(kind)
        if resource is None:
            return Workload(kind, name)
        key = (namespace, kind, name)
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None:
            return hit
        workload = Workload(kind, name)
        try:
            owner = self.client.get(resource, name, namespace=namespace)
            references = (owner.get("metadata") or {}).get("ownerReferences") or ()
            controller = next((r for r in references if r.get("controller")), None)
            if controller is not None:
                workload = Workload(str(controller["kind"]), str(controller["name"]))
        except ApiError as exc:
            if exc.status.code != 404:
                raise
            # Gone already (or never existed): the intermediate owner is all there is to name.
        with self._lock:
            self._cache[key] = workload
        return workload


Changed = Callable[[set[Any]], None]


class PodWatcher:
    """List, then watch, every Pod; keep ``inventory`` in step and report changed keys.

    A dropped connection (an apiserver restart) resumes the watch from the last resourceVersion
    seen, so no change is lost; 410 Gone (that version was compacted away) relists, and the
    relist also removes the Pods deleted meanwhile.
    """

    def __init__(
        self,
        client: Client,
        inventory: Inventory,
        on_change: Changed,
        *,
        retry_seconds: float = 1.0,
    ) -> None:
        self.client = client
        self.inventory = inventory
        self.on_change = on_change
        self.resolve = OwnerResolver(client)
        self.retry_seconds = retry_seconds
        self.resource_version: str | None = None
        self.synced = threading.Event()  # set after the first complete list
        self.relists = 0
        self.resumes = 0

    def relist(self) -> None:
        listing = self.client.list(Pod, namespace="*", chunk_size=500)
        pods = [p for p in (self._running(obj) for obj in listing) if p is not None]
        changed = self.inventory.replace(pods)
        self.resource_version = listing.resourceVersion
        self.relists += 1
        log.info(
            "inventory: %d running pods (resourceVersion %s)", len(pods), self.resource_version
        )
        self.synced.set()
        self.on_change(changed)

    def watch_once(self, stop: threading.Event) -> None:
        """One watch request, until the server ends it, it fails, or ``stop`` is set."""
        events = self.client.watch(
            Pod,
            namespace="*",
            resource_version=self.resource_version,
            server_timeout=WATCH_SECONDS,
        )
        for kind, obj in events:
            self._apply(kind, obj)
            if stop.is_set():
                return

    def _apply(self, kind: str, obj: Any) -> None:
        metadata = obj.get("metadata") or {}
        self.resource_version = metadata.get("resourceVersion") or self.resource_version
        if kind == "BOOKMARK":
            return
        uid = str(metadata.get("uid") or "")
        running = None if kind == "DELETED" else self._running(obj)
        changed = self.inventory.put(running) if running else self.inventory.remove(uid)
        if changed:
            self.on_change(changed)

    def _running(self, obj: Any) -> RunningPod | None:
        return running_pod(obj, self.resolve)

    def run(self, stop: threading.Event) -> None:
        """Until ``stop``: relist when there is no version to resume from, else watch."""
        while not stop.is_set():
            try:
                if self.resource_version is None:
                    self.relist()
                self.watch_once(stop)
            except ApiError as exc:
                if exc.status.code == 410:
                    log.info("watch: resourceVersion %s expired; relisting", self.resource_version)
                    self.resource_version = None
                    continue
                log.warning("watch: %s; retrying", exc)
                stop.wait(self.retry_seconds)
            except (httpx2.HTTPError, OSError) as exc:
                # The apiserver went away: resume from the last version once it is back.
                self.resumes += 1
                log.info("watch: %s; resuming from %s", exc, self.resource_version)
                stop.wait(self.retry_seconds)
            except Exception:
                log.exception("watch failed; relisting")
                self.resource_version = None
                stop.wait(self.retry_seconds)
