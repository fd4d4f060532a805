"""Building AdmissionReviews from the committed Kubernetes objects (fixtures/, see generate.sh)."""

from __future__ import annotations

import copy
import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures"
CAPTURED = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "k8s-admission"

# fixture file -> (group, version, kind, resource)
KINDS: dict[str, tuple[str, str, str, str]] = {
    "pod": ("", "v1", "Pod", "pods"),
    "deployment": ("apps", "v1", "Deployment", "deployments"),
    "replicaset": ("apps", "v1", "ReplicaSet", "replicasets"),
    "statefulset": ("apps", "v1", "StatefulSet", "statefulsets"),
    "daemonset": ("apps", "v1", "DaemonSet", "daemonsets"),
    "job": ("batch", "v1", "Job", "jobs"),
    "cronjob": ("batch", "v1", "CronJob", "cronjobs"),
    "replicationcontroller": ("", "v1", "ReplicationController", "replicationcontrollers"),
    "podtemplate": ("", "v1", "PodTemplate", "podtemplates"),
}
# Where each fixture keeps its pod spec.
POD_SPECS: dict[str, tuple[str, ...]] = {
    "pod": ("spec",),
    "podtemplate": ("template", "spec"),
    "cronjob": ("spec", "jobTemplate", "spec", "template", "spec"),
    **{
        name: ("spec", "template", "spec")
        for name in ("deployment", "replicaset", "statefulset", "daemonset", "job")
    },
    "replicationcontroller": ("spec", "template", "spec"),
}


def digest_of(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


# The images generate.sh puts in every fixture, one per container list.
APP = f"ghcr.io/acme/app@sha256:{digest_of('app')}"
SIDECAR = f"ghcr.io/acme/sidecar@sha256:{digest_of('sidecar')}"
INIT = f"ghcr.io/acme/init@sha256:{digest_of('init')}"
DEBUG = f"ghcr.io/acme/debug@sha256:{digest_of('debug')}"


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def pod_spec(obj: dict[str, Any], fixture: str) -> dict[str, Any]:
    spec = obj
    for key in POD_SPECS[fixture]:
        spec = spec[key]
    return spec


def with_images(
    fixture: str,
    containers: list[str],
    init: list[str] | None = None,
    *,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The fixture object with these images (one container each)."""
    obj = copy.deepcopy(load(fixture))
    spec = pod_spec(obj, fixture)
    spec["containers"] = [{"name": f"c{i}", "image": image} for i, image in enumerate(containers)]
    spec["initContainers"] = [
        {"name": f"i{i}", "image": image} for i, image in enumerate(init or [])
    ]
    if annotations:
        obj.setdefault("metadata", {}).setdefault("annotations", {}).update(annotations)
    return obj


def review(
    obj: dict[str, Any] | None,
    fixture: str | None = None,
    *,
    operation: str = "CREATE",
    namespace: str = "default",
    dry_run: bool = False,
    sub_resource: str | None = None,
    user: str = "alice@example.com",
    api_version: str = "admission.k8s.io/v1",
    gvk: tuple[str, str, str, str] | None = None,
    old: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An AdmissionReview shaped like the ones kube-apiserver sent in ../shared/testdata."""
    if gvk is None:
        if fixture is None:  # the object's own kind
            fixture = next(f for f, k in KINDS.items() if k[2] == (obj or old or {})["kind"])
        gvk = KINDS[fixture]
    group, version, kind, resource = gvk
    if obj is not None:
        obj = copy.deepcopy(obj)
        obj.setdefault("metadata", {})["namespace"] = namespace
        obj["metadata"].setdefault("managedFields", [{"manager": "kubectl", "fieldsV1": {}}])
    name = (obj or old or {}).get("metadata", {}).get("name")
    request: dict[str, Any] = {
        "uid": str(uuid.uuid4()),
        "kind": {"group": group, "version": version, "kind": kind},
        "resource": {"group": group, "version": version, "resource": resource},
        "requestKind": {"group": group, "version": version, "kind": kind},
        "requestResource": {"group": group, "version": version, "resource": resource},
        "name": name,
        "namespace": namespace,
        "operation": operation,
        "userInfo": {"username": user, "groups": ["system:authenticated"]},
        "object": obj,
        "oldObject": old,
        "dryRun": dry_run,
        "options": {"kind": f"{operation.capitalize()}Options", "apiVersion": "meta.k8s.io/v1"},
    }
    if sub_resource:
        request["subResource"] = sub_resource
        request["requestSubResource"] = sub_resource
    return {"kind": "AdmissionReview", "apiVersion": api_version, "request": request}


def captured() -> list[Path]:
    return sorted(CAPTURED.glob("*.json")) if CAPTURED.is_dir() else []


def admit(client: Any, headers: dict[str, str], body: dict[str, Any]) -> str:
    """Send a review through POST /k8s/validate; the id of the decision it recorded."""
    response = client.post("/k8s/validate", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return str(response.json()["response"]["auditAnnotations"]["decision-id"])
