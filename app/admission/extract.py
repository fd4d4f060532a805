"""Which images an admission request would run: every container of the pod spec it carries.

The kind comes from the request (``request.kind``, after the apiserver's conversion), never from
the object, and is matched together with its API group, so a custom resource that happens to be
called "Deployment" is not read as one. Kinds not listed here are allowed with a warning by the
service: Provenant cannot know where their images are, and the webhook configuration decides
which kinds reach it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
EPHEMERAL_SUBRESOURCE = "ephemeralcontainers"

_TEMPLATE = ("spec", "template", "spec")
# Where each (group, kind) keeps its pod spec. "extensions" is the pre-1.16 home of the apps kinds.
POD_SPEC_PATHS: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "Pod"): ("spec",),
    ("", "PodTemplate"): ("template", "spec"),
    ("", "ReplicationController"): _TEMPLATE,
    ("apps", "Deployment"): _TEMPLATE,
    ("apps", "ReplicaSet"): _TEMPLATE,
    ("apps", "StatefulSet"): _TEMPLATE,
    ("apps", "DaemonSet"): _TEMPLATE,
    ("extensions", "Deployment"): _TEMPLATE,
    ("extensions", "ReplicaSet"): _TEMPLATE,
    ("extensions", "DaemonSet"): _TEMPLATE,
    ("batch", "Job"): _TEMPLATE,
    ("batch", "CronJob"): ("spec", "jobTemplate", "spec", "template", "spec"),
}
# kube-apiserver 1.16 to 1.22 sends this object for pods/ephemeralcontainers; later, a Pod.
_EPHEMERAL_KIND = ("", "EphemeralContainers")


class ExtractError(ValueError):
    """The object is not shaped like its kind: no apiserver sends that, so the review is
    malformed (a 400), not a policy question."""


@dataclass(frozen=True)
class Container:
    list: str  # containers | initContainers | ephemeralContainers
    index: int
    name: str
    image: str
    path: str  # where it is in the object, e.g. spec.template.spec.containers[1]

    @property
    def label(self) -> str:
        return f"{self.list}/{self.name}" if self.name else f"{self.list}[{self.index}]"


@dataclass(frozen=True)
class Extraction:
    supported: bool
    containers: tuple[Container, ...] = ()
    # Annotations of the pod template, where there is one: Pods inherit those, not the owner's.
    template_annotations: Mapping[str, Any] | None = None

    @property
    def images(self) -> list[str]:
        """Each distinct image once, in the order the object lists them."""
        return list(self._by_image)

    def containers_of(self, image: str) -> list[Container]:
        return self._by_image.get(image, [])

    @cached_property
    def _by_image(self) -> dict[str, list[Container]]:
        # Built once: callers ask per image, and a scan per image made a 10,000-container
        # object cost 18 s (issue 11).
        grouped: dict[str, list[Container]] = {}
        for container in self.containers:
            grouped.setdefault(container.image, []).append(container)
        return grouped


def extract(
    group: str, kind: str, obj: Mapping[str, Any], sub_resource: str | None = None
) -> Extraction:
    """The containers of ``obj``, a ``group``/``kind`` object as found in an admission request.

    For the ``ephemeralcontainers`` subresource only the ephemeral containers count: it is the
    one part of a running Pod that subresource can change.
    """
    if not isinstance(obj, Mapping):
        raise ExtractError("the object is not a JSON object")
    if (group, kind) == _EPHEMERAL_KIND:
        found = _containers(obj, (), lists=("ephemeralContainers",))
        return Extraction(True, tuple(found))
    path = POD_SPEC_PATHS.get((group, kind))
    if path is None:
        return Extraction(False)
    spec = _walk(obj, path)
    lists = ("ephemeralContainers",) if sub_resource == EPHEMERAL_SUBRESOURCE else CONTAINER_LISTS
    template = None
    if len(path) > 1:
        metadata = _walk(obj, (*path[:-1], "metadata"), required=False)
        template = _mapping(metadata.get("annotations"), "pod template annotations")
    return Extraction(True, tuple(_containers(spec, path, lists=lists)), template)


def _walk(
    obj: Mapping[str, Any], path: Sequence[str], *, required: bool = True
) -> Mapping[str, Any]:
    current: Mapping[str, Any] = obj
    for depth, key in enumerate(path):
        value = current.get(key)
        if value is None and not required:
            return {}
        if not isinstance(value, Mapping):
            where = ".".join(path[: depth + 1])
            raise ExtractError(f"{where} is {'missing' if value is None else 'not an object'}")
        current = value
    return current


def _mapping(value: Any, what: str) -> Mapping[str, Any] | None:
    if value is None or isinstance(value, Mapping):
        return value
    raise ExtractError(f"{what} is not an object")


def _containers(
    spec: Mapping[str, Any], path: Sequence[str], *, lists: Sequence[str]
) -> list[Container]:
    prefix = ".".join(path) + "." if path else ""
    found: list[Container] = []
    for list_name in lists:
        items = spec.get(list_name)
        if items is None:
            continue
        if not isinstance(items, list):
            raise ExtractError(f"{prefix}{list_name} is not a list")
        for index, item in enumerate(items):
            where = f"{prefix}{list_name}[{index}]"
            if not isinstance(item, Mapping):
                raise ExtractError(f"{where} is not an object")
            image = item.get("image", "")
            name = item.get("name", "")
            if not isinstance(image, str) or not isinstance(name, str):
                raise ExtractError(f"{where}: image and name must be strings")
            # An empty image is kept: the engine denies it as unparseable (fail closed).
            found.append(Container(list_name, index, name, image, where))
    return found
