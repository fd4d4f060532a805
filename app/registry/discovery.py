"""Discovery: every signature and attestation stored beside an image digest, by three schemes.

In this order (the issue's and the OCI distribution spec's):

1. the OCI 1.1 referrers API, ``GET /v2/<name>/referrers/<digest>``: an index of manifests whose
   ``subject`` is the image, filtered here by ``artifactType`` (Sigstore bundles);
2. the referrers tag schema, when the API is missing (404): the same index stored at tag
   ``sha256-<hex>`` (what distribution 2.8, GHCR and ``@sigstore/oci`` fall back to);
3. cosign's tags ``sha256-<hex>.sig`` (simple-signing layers) and ``sha256-<hex>.att`` (DSSE
   envelope layers), see ``cosign``.

Each item is checked for what the registry could get wrong (every manifest and blob hashes to
its digest, a referrer's ``subject`` is this image, a signature names this image) and handed
back as a document for the one ingest path. A registry failure (401, 429, timeout) raises; an
item that is wrong becomes a ``Problem`` and the others still count.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from app.registry import cosign
from app.registry import errors as E
from app.registry.client import INDEX_TYPES, Deadline, Fetched, RegistryClient
from app.registry.credentials import Credential
from app.registry.errors import RegistryError

BUNDLE_TYPES = frozenset(
    {
        "application/vnd.dev.sigstore.bundle.v0.3+json",
        "application/vnd.dev.sigstore.bundle+json;version=0.3",
        "application/vnd.dev.sigstore.bundle+json;version=0.2",
        "application/vnd.dev.sigstore.bundle+json;version=0.1",
    }
)
MAX_REFERRERS = 64  # per image: more is a registry being abused, not a supply chain
MAX_LAYERS = 16  # per signature or attestation manifest


@dataclass(frozen=True)
class Found:
    """A document to ingest, and where it was found."""

    scheme: str  # referrers-api | referrers-tag | cosign-sig | cosign-att
    manifest_digest: str
    layer_digest: str
    document: bytes
    message_signature: bool  # its subject is the image digest, named by us
    signed_digest: tuple[str, str] | None = None  # what a simple signing signature covers


@dataclass(frozen=True)
class Problem:
    """An item found but unusable: rejected, with the registry's or the binding's code."""

    scheme: str
    manifest_digest: str
    layer_digest: str | None
    raw: bytes | None
    error: RegistryError


@dataclass
class Discovery:
    found: list[Found]
    problems: list[Problem]
    referrers_api: bool | None = None  # None: not asked; False: the registry lacks it


@dataclass(frozen=True)
class Target:
    registry: str
    repository: str
    digest: str  # the image (manifest or index) digest, "sha256:<hex>"
    credential: Credential | None = None


def discover(
    client: RegistryClient,
    target: Target,
    deadline: Deadline,
    executor: Executor | None = None,
) -> Discovery:
    """Everything beside ``target``. The three lookups are independent: with an ``executor``
    they run at once (a pull then costs the slowest scheme's round trips, not their sum)."""
    jobs: list[Callable[[], Discovery]] = [
        lambda: _by_referrers(client, target, deadline),
        lambda: _cosign(client, target, cosign.sig_tag(target.digest), "cosign-sig", deadline),
        lambda: _cosign(client, target, cosign.att_tag(target.digest), "cosign-att", deadline),
    ]
    if executor is None:
        parts = [job() for job in jobs]
    else:
        futures = [executor.submit(job) for job in jobs]
        parts = [future.result() for future in futures]  # the first registry failure raises
    result = Discovery([], [], parts[0].referrers_api)
    for part in parts:  # in scheme order, whatever finished first
        result.found += part.found
        result.problems += part.problems
    return result


def _by_referrers(client: RegistryClient, target: Target, deadline: Deadline) -> Discovery:
    result = Discovery([], [])
    index = client.referrers(
        target.registry, target.repository, target.digest, deadline, credential=target.credential
    )
    result.referrers_api = index is not None
    scheme = "referrers-api"
    if index is None:
        scheme = "referrers-tag"
        tagged = _manifest(client, target, target.digest.replace(":", "-"), deadline)
        index = tagged.json() if tagged is not None and tagged.media_type in INDEX_TYPES else None
    if index is not None:
        _referrers(client, target, index, scheme, deadline, result)
    return result


def _manifest(
    client: RegistryClient, target: Target, reference: str, deadline: Deadline
) -> Fetched | None:
    return client.manifest(
        target.registry, target.repository, reference, deadline, credential=target.credential
    )


def _blob(client: RegistryClient, target: Target, digest: str, deadline: Deadline) -> bytes:
    return client.blob(
        target.registry, target.repository, digest, deadline, credential=target.credential
    )


def _referrers(
    client: RegistryClient,
    target: Target,
    index: dict[str, Any],
    scheme: str,
    deadline: Deadline,
    result: Discovery,
) -> None:
    descriptors = index.get("manifests")
    if not isinstance(descriptors, list):
        return
    wanted = [d for d in descriptors if isinstance(d, dict) and _artifact_type(d) in BUNDLE_TYPES]
    for descriptor in wanted[:MAX_REFERRERS]:
        digest = descriptor.get("digest")
        if not isinstance(digest, str):
            continue
        _item(
            result,
            scheme,
            digest,
            None,
            lambda d=digest: _referrer(client, target, d, scheme, deadline, result),
        )


def _referrer(
    client: RegistryClient,
    target: Target,
    digest: str,
    scheme: str,
    deadline: Deadline,
    result: Discovery,
) -> None:
    fetched = _manifest(client, target, digest, deadline)
    if fetched is None:
        raise RegistryError(E.NOT_FOUND, f"referrer manifest {digest} is listed but missing")
    manifest = fetched.json()
    subject = manifest.get("subject")
    named = subject.get("digest") if isinstance(subject, dict) else None
    if named != target.digest:
        raise RegistryError(
            E.IMAGE_DIGEST_MISMATCH,
            f"referrer {digest} has subject {named}, not the image {target.digest}",
        )
    for layer in _layers(manifest):
        if layer.get("mediaType") not in BUNDLE_TYPES:
            continue
        layer_digest = layer["digest"]

        def take(layer_digest: str = layer_digest) -> None:
            document = _logless_envelope(_blob(client, target, layer_digest, deadline))
            _require_statement_names(document, target.digest)
            result.found.append(
                Found(scheme, digest, layer_digest, document, _is_message_signature(document))
            )

        _item(result, scheme, digest, layer_digest, take)


def _cosign(
    client: RegistryClient, target: Target, tag: str, scheme: str, deadline: Deadline
) -> Discovery:
    result = Discovery([], [])
    fetched = _manifest(client, target, tag, deadline)
    if fetched is None:
        return result
    manifest = fetched.json()
    expected = (
        cosign.SIMPLE_SIGNING_MEDIA_TYPE if scheme == "cosign-sig" else cosign.DSSE_MEDIA_TYPE
    )
    for layer in _layers(manifest):
        if layer.get("mediaType") != expected:
            continue
        layer_digest = layer["digest"]

        def take(layer: dict[str, Any] = layer, layer_digest: str = layer_digest) -> None:
            content = _blob(client, target, layer_digest, deadline)
            if scheme == "cosign-sig":
                cosign.check_simple_signing(content, target.digest)
                converted = cosign.signature_document(layer, content)
                found = Found(
                    scheme,
                    fetched.digest,
                    layer_digest,
                    converted.document,
                    True,
                    converted.signed_digest,
                )
            else:
                _require_statement_names(content, target.digest)
                converted = cosign.attestation_document(layer, content)
                found = Found(scheme, fetched.digest, layer_digest, converted.document, False)
            result.found.append(found)

        _item(result, scheme, fetched.digest, layer_digest, take)
    return result


def _item(
    result: Discovery,
    scheme: str,
    manifest_digest: str,
    layer_digest: str | None,
    action: Callable[[], None],
) -> None:
    """Run one item's fetch and checks; a wrong item is a Problem, a registry failure raises."""
    try:
        action()
    except RegistryError as exc:
        if exc.code in _REGISTRY_FAILURES:
            raise
        result.problems.append(Problem(scheme, manifest_digest, layer_digest, None, exc))


# The registry itself failing: the whole discovery is incomplete, so it fails as a whole.
_REGISTRY_FAILURES = frozenset(
    {E.UNAUTHORIZED, E.RATE_LIMITED, E.UNAVAILABLE, E.TIMEOUT, E.INSECURE}
)


def _layers(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    layers = manifest.get("layers")
    if not isinstance(layers, list):
        raise RegistryError(E.MALFORMED, "manifest has no layers")
    usable = [
        layer
        for layer in layers
        if isinstance(layer, dict) and isinstance(layer.get("digest"), str)
    ]
    return usable[:MAX_LAYERS]


def _artifact_type(descriptor: dict[str, Any]) -> str | None:
    value = descriptor.get("artifactType")
    return value if isinstance(value, str) else None


def _is_message_signature(document: bytes) -> bool:
    try:
        parsed = json.loads(document)
    except ValueError:
        return False
    return isinstance(parsed, dict) and "messageSignature" in parsed


def _require_statement_names(document: bytes, image_digest: str) -> None:
    """A DSSE attestation found beside an image must be about that image.

    Read before verification only to decide where the document belongs; the verifier then
    checks the signature over these very bytes, and stores the subjects it verified.
    """
    subjects = _statement_subjects(document)
    if subjects is None:
        return  # not a statement (a message signature); the verifier will say what it is
    algorithm, _, hex_digest = image_digest.partition(":")
    if not any(s.get(algorithm, "").lower() == hex_digest for s in subjects):
        raise RegistryError(
            E.IMAGE_DIGEST_MISMATCH,
            f"the attestation's subjects do not include the image {image_digest}: an "
            "attestation about another artifact",
        )


def _statement_subjects(document: bytes) -> list[dict[str, str]] | None:
    try:
        parsed = json.loads(document)
        envelope = parsed.get("dsseEnvelope", parsed)
        payload = envelope.get("payload")
        if not isinstance(payload, str):
            return None
        statement = json.loads(base64.b64decode(payload))
        subjects = statement.get("subject")
    except (ValueError, AttributeError, TypeError):
        return None
    if not isinstance(subjects, list):
        return []
    return [
        s["digest"] for s in subjects if isinstance(s, dict) and isinstance(s.get("digest"), dict)
    ]


def _logless_envelope(document: bytes) -> bytes:
    """A key-signed DSSE bundle with no log entry nor timestamp (a Provenant VSA, ``cosign
    attest --key --tlog-upload=false``) is its DSSE envelope and nothing more: handed on as
    that envelope, it is verified like an uploaded one, with the policy directory's keys, as
    a cosign ``.att`` layer without a certificate already is. Anything else is left whole."""
    try:
        parsed = json.loads(document)
        material = parsed["verificationMaterial"]
        envelope = parsed["dsseEnvelope"]
    except (ValueError, KeyError, TypeError):
        return document
    if (
        not isinstance(material, dict)
        or not isinstance(envelope, dict)
        or "publicKey" not in material
        or material.get("tlogEntries")
        or material.get("timestampVerificationData")
    ):
        return document
    return json.dumps(envelope, separators=(",", ":")).encode()
