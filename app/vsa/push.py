"""``provenant vsa push``: a VSA attached to its image as an OCI referrer.

It goes as a Sigstore bundle (``application/vnd.dev.sigstore.bundle.v0.3+json``, both the
manifest's ``artifactType`` and the layer's media type, with the annotations
``dev.sigstore.bundle.content: dsse-envelope`` and ``dev.sigstore.bundle.predicateType``):
that is the layout of cosign's bundle specification (``specs/BUNDLE_SPEC.md``, what
``--new-bundle-format`` attaches) and of ``@sigstore/oci`` (GitHub's actions/attest), so the
tools that look for attestations beside images find it, and Provenant's own discovery takes it.
A bare DSSE envelope has no referrer media type those tools list.
The bundle carries no log entry (see ``envelope.as_bundle``); Provenant's discovery hands it
on as its DSSE envelope, verified with the consumer's keys.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from app.registry.attach import Attached, attach
from app.registry.client import Deadline, Fetched, RegistryClient, sha256_digest
from app.registry.discovery import Target
from app.vsa.envelope import BUNDLE_MEDIA_TYPE, as_bundle
from app.vsa.summary import VSA_PREDICATE_TYPE

MAX_VSA_BYTES = 1024 * 1024


class NotPushable(ValueError):
    """The file is not a VSA about this image."""


def pushable_bundle(document: bytes, image_digest: str) -> bytes:
    """The VSA (DSSE envelope or bundle) as the bundle to attach, once it is checked to be a
    VSA whose subjects include ``image_digest``. Nothing is verified here: the consumer does."""
    if len(document) > MAX_VSA_BYTES:
        raise NotPushable(f"{len(document)} bytes is over the {MAX_VSA_BYTES}-byte limit")
    try:
        parsed = json.loads(document)
        envelope: dict[str, Any] = parsed.get("dsseEnvelope", parsed)
        statement = json.loads(base64.b64decode(envelope["payload"], validate=True))
        subjects = statement["subject"]
        predicate_type = statement["predicateType"]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise NotPushable(
            "not a DSSE envelope or Sigstore bundle over an in-toto Statement"
        ) from exc
    if predicate_type != VSA_PREDICATE_TYPE:
        raise NotPushable(f"predicate type {predicate_type!r} is not {VSA_PREDICATE_TYPE}")
    algorithm, _, value = image_digest.partition(":")
    if not any(
        isinstance(s, dict)
        and isinstance(s.get("digest"), dict)
        and s["digest"].get(algorithm) == value
        for s in subjects
        if isinstance(subjects, list)
    ):
        raise NotPushable(f"the VSA's subjects do not include the image {image_digest}")
    if "dsseEnvelope" in parsed:
        return document
    signatures = envelope.get("signatures") or [{}]
    key_id = signatures[0].get("keyid", "") if isinstance(signatures[0], dict) else ""
    return json.dumps(as_bundle(envelope, key_id), separators=(",", ":")).encode()


def push_vsa(
    client: RegistryClient, target: Target, image: Fetched, bundle: bytes, deadline: Deadline
) -> Attached:
    return attach(
        client,
        target,
        image,
        bundle,
        BUNDLE_MEDIA_TYPE,
        {
            "dev.sigstore.bundle.content": "dsse-envelope",
            "dev.sigstore.bundle.predicateType": VSA_PREDICATE_TYPE,
        },
        deadline,
        # The file name oras and others save the layer as (cosign's bundle spec).
        {
            "org.opencontainers.image.title": sha256_digest(bundle).replace(":", "-")
            + ".sigstore.json"
        },
    )
