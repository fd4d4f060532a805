"""What runs: Pods reduced to (workload, container, image), counted per finding key.

The image a container runs is the digest the kubelet reports in ``status.*containerStatuses[]
.imageID`` (that is what was pulled, even for a tag-only spec), under the spec's repository name
(policies select by name; the imageID may name a mirror). Without a reported digest the spec's
reference is what there is. Pure data and a thread-safe table; no Kubernetes calls here.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from app.policy.matching import parse_image

# The kinds a Pod's controller chain ends in; anything else is reported as it is found.
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")
_CONTAINER_LISTS = (
    ("containers", "containerStatuses"),
    ("initContainers", "initContainerStatuses"),
    ("ephemeralContainers", "ephemeralContainerStatuses"),
)


@dataclass(frozen=True, order=True)
class Workload:
    kind: str
    name: str


@dataclass(frozen=True, order=True)
class FindingKey:
    """What one finding is about: a container of a workload running one image."""

    namespace: str
    workload_kind: str
    workload_name: str
    container: str
    image: str

    @property
    def digest(self) -> str | None:
        try:
            return parse_image(self.image).digest_string
        except ValueError:
            return None

    def hash_in(self, cluster: str) -> str:
        """The stored finding's unique key: clusters share one database."""
        parts = (cluster, self.namespace, self.workload_kind, self.workload_name, self.container)
        return hashlib.sha256("\0".join((*parts, self.image)).encode()).hexdigest()

    @property
    def subject(self) -> str:
        return f"{self.namespace}/{self.workload_kind}/{self.workload_name}/{self.container}"


@dataclass(frozen=True)
class RunningPod:
    uid: str
    namespace: str
    name: str
    workload: Workload
    containers: tuple[tuple[str, str], ...]  # (container name, image as run)

    def keys(self) -> set[FindingKey]:
        w = self.workload
        return {FindingKey(self.namespace, w.kind, w.name, c, i) for c, i in self.containers}


# (namespace, owner kind, owner name) -> the workload at the top of the controller chain
OwnerResolver = Callable[[str, str, str], Workload]


def running_image(spec_image: str, image_id: str | None) -> str:
    """The reference that names what actually runs (see the module docstring)."""
    digest = _reported_digest(image_id)
    if digest is None:
        return spec_image
    try:
        name = parse_image(spec_image).name
    except ValueError:
        return spec_image
    return f"{name}@{digest}"


def _reported_digest(image_id: str | None) -> str | None:
    """``docker-pullable://repo@sha256:...`` and ``repo@sha256:...`` carry the manifest digest;
    a bare ``sha256:...`` (Docker's image id) is the config's digest, which no attestation
    names, so it is ignored."""
    if not image_id or "@" not in image_id:
        return None
    digest = image_id.rsplit("@", 1)[1]
    algorithm, _, hex_ = digest.partition(":")
    if algorithm != "sha256" or len(hex_) != 64:
        return None
    return digest.lower()


def running_pod(pod: Mapping[str, Any], resolve: OwnerResolver) -> RunningPod | None:
    """The pod as running containers; None for a pod that runs nothing any more (Succeeded or
    Failed) or has no identity."""
    metadata = pod.get("metadata") or {}
    uid, name, namespace = metadata.get("uid"), metadata.get("name"), metadata.get("namespace")
    if not (uid and name and namespace):
        return None
    status = pod.get("status") or {}
    if status.get("phase") in ("Succeeded", "Failed"):
        return None
    spec = pod.get("spec") or {}
    containers: list[tuple[str, str]] = []
    for spec_list, status_list in _CONTAINER_LISTS:
        reported = {
            s.get("name"): s.get("imageID")
            for s in status.get(status_list) or ()
            if isinstance(s, Mapping)
        }
        for container in spec.get(spec_list) or ():
            image = container.get("image") if isinstance(container, Mapping) else None
            if isinstance(image, str) and image:
                cname = str(container.get("name") or "")
                containers.append((cname, running_image(image, reported.get(cname))))
    workload = _owner(metadata, namespace, name, resolve)
    return RunningPod(str(uid), namespace, name, workload, tuple(containers))


def _owner(
    metadata: Mapping[str, Any], namespace: str, name: str, resolve: OwnerResolver
) -> Workload:
    references = [r for r in metadata.get("ownerReferences") or () if isinstance(r, Mapping)]
    controller = next((r for r in references if r.get("controller")), None)
    if controller is None:
        return Workload("Pod", name)
    return resolve(namespace, str(controller.get("kind")), str(controller.get("name")))


class Inventory:
    """Running pods by uid, and how many pods run each finding key. Every change returns the keys
    whose pod count changed, which is what the evaluator has to look at."""

    def __init__(self) -> None:
        self._pods: dict[str, RunningPod] = {}
        self._counts: dict[FindingKey, int] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._pods)

    def put(self, pod: RunningPod) -> set[FindingKey]:
        with self._lock:
            old = self._pods.get(pod.uid)
            if old == pod:
                return set()
            self._pods[pod.uid] = pod
            return self._moved(old, pod)

    def remove(self, uid: str) -> set[FindingKey]:
        with self._lock:
            old = self._pods.pop(uid, None)
            return self._moved(old, None)

    def replace(self, pods: Iterable[RunningPod]) -> set[FindingKey]:
        """A relist: the pods now running, whatever was known before (deletions missed while a
        watch was down come out here)."""
        fresh = {pod.uid: pod for pod in pods}
        with self._lock:
            changed: set[FindingKey] = set()
            for uid in list(self._pods):
                if uid not in fresh:
                    changed |= self._moved(self._pods.pop(uid), None)
            for uid, pod in fresh.items():
                old = self._pods.get(uid)
                if old != pod:
                    self._pods[uid] = pod
                    changed |= self._moved(old, pod)
            return changed

    def _moved(self, old: RunningPod | None, new: RunningPod | None) -> set[FindingKey]:
        before = old.keys() if old else set()
        after = new.keys() if new else set()
        for key in before - after:
            left = self._counts[key] - 1
            if left:
                self._counts[key] = left
            else:
                del self._counts[key]
        for key in after - before:
            self._counts[key] = self._counts.get(key, 0) + 1
        return before ^ after

    def counts(self) -> dict[FindingKey, int]:
        with self._lock:
            return dict(self._counts)

    def count(self, key: FindingKey) -> int:
        with self._lock:
            return self._counts.get(key, 0)
