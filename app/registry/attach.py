"""Attach an artifact to an image as an OCI 1.1 referrer, what ``discovery`` reads back.

The artifact (here a Sigstore bundle) becomes the one layer of an OCI image manifest whose
``subject`` is the image's manifest descriptor, with the empty config
(``application/vnd.oci.empty.v1+json``, the two bytes ``{}``) and ``artifactType`` the layer's
media type: the shape of the OCI image spec's artifact guidance, and the one cosign's bundle
specification (``specs/BUNDLE_SPEC.md``) and ``@sigstore/oci`` (GitHub's actions/attest) give.

A registry with the referrers API indexes the subject itself and says so with ``OCI-Subject``
on the manifest PUT. One without it (distribution 2.8, so still many private registries) gets
the distribution spec's fallback from the client ("Pushing Manifests with Subject"): the image
index at tag ``<alg>-<hex>`` is read (or started empty), the new manifest's descriptor is added
with its ``artifactType`` and annotations, and the index is put back. The read-modify-write
races with another client attaching to the same image at that moment; distribution 2.8 honours
no ``If-Match``, so the last writer wins and a lost descriptor needs a second push.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.registry import errors as E
from app.registry.client import (
    OCI_INDEX,
    OCI_MANIFEST,
    Deadline,
    Fetched,
    RegistryClient,
    sha256_digest,
)
from app.registry.discovery import Target
from app.registry.errors import RegistryError

EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_BLOB = b"{}"


@dataclass(frozen=True)
class Attached:
    manifest_digest: str  # the referrer manifest
    artifact_digest: str  # its layer: the artifact's bytes
    referrers_api: bool  # the registry indexed the subject itself (OCI-Subject)
    fallback_tag: str | None  # the referrers tag updated when it did not


def referrers_tag(digest: str) -> str:
    """``sha256:<hex>`` as the referrers tag schema's tag ``sha256-<hex>``."""
    return digest.replace(":", "-")


def attach(
    client: RegistryClient,
    target: Target,
    subject: Fetched,
    artifact: bytes,
    artifact_type: str,
    annotations: dict[str, str],
    deadline: Deadline,
    layer_annotations: dict[str, str] | None = None,
) -> Attached:
    """Upload ``artifact`` and a manifest naming ``subject`` (the image as the registry serves
    it), then make it findable by the referrers API or the referrers tag."""
    if subject.digest != target.digest:
        raise RegistryError(
            E.IMAGE_DIGEST_MISMATCH, f"subject {subject.digest} is not {target.digest}"
        )
    where = (target.registry, target.repository)
    config = client.push_blob(*where, EMPTY_BLOB, deadline, credential=target.credential)
    layer = client.push_blob(*where, artifact, deadline, credential=target.credential)
    every = {"org.opencontainers.image.created": _now(), **annotations}
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": EMPTY_MEDIA_TYPE, "digest": config, "size": len(EMPTY_BLOB)},
        "layers": [
            {
                "mediaType": artifact_type,
                "digest": layer,
                "size": len(artifact),
                **({"annotations": layer_annotations} if layer_annotations else {}),
            }
        ],
        "subject": {
            "mediaType": subject.media_type,
            "digest": subject.digest,
            "size": len(subject.content),
        },
        "annotations": every,
    }
    content = json.dumps(manifest, separators=(",", ":")).encode()
    digest, indexed = client.put_manifest(
        *where,
        sha256_digest(content),
        content,
        OCI_MANIFEST,
        deadline,
        credential=target.credential,
    )
    if indexed:
        return Attached(digest, layer, True, None)
    descriptor = {
        "mediaType": OCI_MANIFEST,
        "digest": digest,
        "size": len(content),
        "artifactType": artifact_type,
        "annotations": every,
    }
    tag = referrers_tag(target.digest)
    _add_to_referrers_tag(client, target, tag, descriptor, deadline)
    return Attached(digest, layer, False, tag)


def _add_to_referrers_tag(
    client: RegistryClient,
    target: Target,
    tag: str,
    descriptor: dict[str, Any],
    deadline: Deadline,
) -> None:
    # Every manifest type accepted: distribution answers 404 for an image manifest the Accept
    # header leaves out, and a squatting image would then be overwritten.
    current = client.manifest(
        target.registry, target.repository, tag, deadline, credential=target.credential
    )
    if current is None:
        index: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    elif current.media_type != OCI_INDEX:
        # Something else owns the tag; overwriting it would destroy it.
        raise RegistryError(
            E.MALFORMED,
            f"tag {tag} holds a {current.media_type or 'non-index'} manifest, not the "
            "referrers index: refusing to overwrite it",
            registry=target.registry,
        )
    else:
        index = current.json()
        if not isinstance(index.get("manifests"), list):
            index["manifests"] = []
    if any(
        isinstance(d, dict) and d.get("digest") == descriptor["digest"] for d in index["manifests"]
    ):
        return
    index["manifests"].append(descriptor)
    client.put_manifest(
        target.registry,
        target.repository,
        tag,
        json.dumps(index, separators=(",", ":")).encode(),
        OCI_INDEX,
        deadline,
        credential=target.credential,
    )


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
