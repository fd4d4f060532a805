"""POST /k8s/mutate: pin tag-only images to the digest their tag names now (JSON patch).

Off by default (``PROVENANT_REGISTRY_MUTATE``): GitOps tools see the pinned image as drift
from what they applied. When on, each ``image: repo:tag`` becomes ``repo:tag@sha256:...``, as
policy-controller and Kyverno do, so the validating webhook then judges a digest. A tag that
cannot be resolved is left alone with a warning: denying is the validating webhook's call.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Sequence
from typing import Any

from app.admission.extract import Extraction
from app.admission.fetch import RegistryAccess, RegistryFetchFailed
from app.admission.schemas import AdmissionReview
from app.policy.matching import parse_image

_INDEX = re.compile(r"\[(\d+)\]")


def pointer(path: str) -> str:
    """``spec.template.spec.containers[1]`` as the JSON pointer of that container's image."""
    return "/" + _INDEX.sub(r"/\1", path).replace(".", "/") + "/image"


def mutation(
    review: AdmissionReview,
    extraction: Extraction | None,
    registry: RegistryAccess,
    pull_secrets: Sequence[str] = (),
) -> dict[str, Any]:
    """The AdmissionReview answer: allowed, with a JSON patch when something was pinned."""
    request = review.request
    patch: list[dict[str, str]] = []
    warnings: list[str] = []
    resolved: dict[str, str] = {}
    containers = extraction.containers if extraction is not None else ()
    for container in containers:
        try:
            ref = parse_image(container.image)
        except ValueError:
            continue  # the validating webhook reports it
        if ref.digest is not None:
            continue
        digest = resolved.get(container.image)
        if digest is None:
            try:
                digest = registry.resolve(
                    container.image,
                    timeout=registry.resolve_timeout,
                    namespace=request.namespace,
                    pull_secrets=pull_secrets,
                )
            except RegistryFetchFailed as exc:
                warnings.append(f"Provenant: {container.image} not pinned: {exc}")
                continue
            resolved[container.image] = digest
        patch.append(
            {
                "op": "replace",
                "path": pointer(container.path),
                "value": f"{container.image}@{digest}",
            }
        )
    response: dict[str, Any] = {"uid": request.uid, "allowed": True}
    if patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
    if warnings:
        response["warnings"] = warnings
    return {"apiVersion": review.apiVersion, "kind": "AdmissionReview", "response": response}
