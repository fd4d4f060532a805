"""Attaching an artifact as an OCI referrer with the registry client, against the real
registry (distribution 2.8: no referrers API, so the referrers tag is kept by the client), and
found again by this codebase's discovery."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest

from app.registry.attach import EMPTY_MEDIA_TYPE, _add_to_referrers_tag, attach, referrers_tag
from app.registry.client import OCI_INDEX, OCI_MANIFEST, Deadline, Fetched, RegistryClient
from app.registry.credentials import Credential
from app.registry.discovery import Target, _logless_envelope, discover
from app.registry.errors import RegistryError
from tests.registry.tools import (
    BUNDLE_V03,
    LOCAL_REGISTRIES,
    LocalRegistry,
    attach_with_sigstore_oci,
    local_registry,
    sha256_digest,
)

REPO = "team/app"


def bundle_about(digest: str, note: str = "") -> bytes:
    """A bundle-shaped document naming ``digest`` (attach and discovery read, never verify)."""
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "app", "digest": {"sha256": digest.split(":")[1]}}],
        "predicateType": "https://example.com/test",
        "predicate": {"note": note},
    }
    envelope = {
        "payloadType": "application/vnd.in-toto+json",
        "payload": base64.b64encode(json.dumps(statement).encode()).decode(),
        "signatures": [{"keyid": "k", "sig": "c2ln"}],
    }
    material = {"x509CertificateChain": {"certificates": []}, "tlogEntries": [{"x": 1}]}
    return json.dumps(
        {"mediaType": BUNDLE_V03, "verificationMaterial": material, "dsseEnvelope": envelope}
    ).encode()


def image(client: RegistryClient, registry: LocalRegistry, digest: str) -> Fetched:
    fetched = client.manifest(registry.host, REPO, digest, Deadline.after(10))
    assert fetched is not None
    return fetched


def test_an_attached_bundle_is_a_referrer_found_by_discovery(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    digest = registry.push_image(REPO, "v1")
    client = RegistryClient(allowed=LOCAL_REGISTRIES)
    target = Target(registry.host, REPO, digest)
    subject = image(client, registry, digest)
    # Someone else (GitHub's attest, through @sigstore/oci) attached first: it must survive.
    attach_with_sigstore_oci(registry, REPO, digest, bundle_about(digest, "theirs"), tmp_path)

    first = attach(
        client,
        target,
        subject,
        bundle_about(digest, "one"),
        BUNDLE_V03,
        {"a": "1"},
        Deadline.after(10),
    )
    second = attach(
        client, target, subject, bundle_about(digest, "two"), BUNDLE_V03, {}, Deadline.after(10)
    )

    assert not first.referrers_api and first.fallback_tag == referrers_tag(digest)
    manifest = image(client, registry, first.manifest_digest).json()
    assert manifest["mediaType"] == OCI_MANIFEST
    assert manifest["artifactType"] == BUNDLE_V03
    assert manifest["subject"] == {
        "mediaType": subject.media_type,
        "digest": digest,
        "size": len(subject.content),
    }
    assert manifest["config"] == {
        "mediaType": EMPTY_MEDIA_TYPE,
        "digest": sha256_digest(b"{}"),
        "size": 2,
    }
    assert manifest["layers"][0]["digest"] == first.artifact_digest
    assert manifest["annotations"]["a"] == "1"
    tagged = client.manifest(registry.host, REPO, referrers_tag(digest), Deadline.after(10))
    assert tagged is not None and tagged.media_type == OCI_INDEX
    listed = tagged.json()["manifests"]
    assert len(listed) == 3
    assert [d["digest"] for d in listed[1:]] == [first.manifest_digest, second.manifest_digest]
    assert {d["artifactType"] for d in listed} == {BUNDLE_V03}

    found = discover(client, target, Deadline.after(10))
    assert found.problems == []
    assert found.referrers_api is False
    notes = {
        json.loads(base64.b64decode(json.loads(f.document)["dsseEnvelope"]["payload"]))[
            "predicate"
        ]["note"]
        for f in found.found
    }
    assert notes == {"theirs", "one", "two"}
    assert {f.scheme for f in found.found} == {"referrers-tag"}

    # A descriptor already listed (a retried push) is not listed twice.
    _add_to_referrers_tag(client, target, referrers_tag(digest), listed[1], Deadline.after(10))
    again = client.manifest(registry.host, REPO, referrers_tag(digest), Deadline.after(10))
    assert again is not None and len(again.json()["manifests"]) == 3
    client.close()


def test_a_tag_that_is_not_a_referrers_index_is_not_overwritten(
    registry: LocalRegistry,
) -> None:
    digest = registry.push_image(REPO, "v1")
    other = registry.push_image(REPO, referrers_tag(digest), seed="squatter")
    client = RegistryClient(allowed=LOCAL_REGISTRIES)
    with pytest.raises(RegistryError) as caught:
        attach(
            client,
            Target(registry.host, REPO, digest),
            image(client, registry, digest),
            bundle_about(digest),
            BUNDLE_V03,
            {},
            Deadline.after(10),
        )
    assert "refusing to overwrite" in caught.value.message
    still = client.manifest(registry.host, REPO, referrers_tag(digest), Deadline.after(10))
    assert still is not None and still.digest == other
    client.close()


def test_pushing_asks_the_token_service_for_push_scope(tmp_path: Path) -> None:
    with local_registry(tmp_path / "registry", "token") as registry:
        digest = registry.push_image(REPO, "v1")
        assert registry.issuer is not None
        asked: list[list[str]] = []
        issue = registry.issuer.token

        def recording(scopes: list[str], user: bool) -> str:
            asked.append(scopes)
            return issue(scopes, user)

        registry.issuer.token = recording  # type: ignore[method-assign]
        credential = Credential(registry.user, registry.password)
        client = RegistryClient(allowed=LOCAL_REGISTRIES)
        subject = client.manifest(
            registry.host, REPO, digest, Deadline.after(10), credential=credential
        )
        assert subject is not None
        attached = attach(
            client,
            Target(registry.host, REPO, digest, credential),
            subject,
            bundle_about(digest),
            BUNDLE_V03,
            {},
            Deadline.after(10),
        )
        assert [f"repository:{REPO}:pull,push"] in asked
        assert [f"repository:{REPO}:pull"] in asked  # the read before, its own token
        found = discover(
            client, Target(registry.host, REPO, digest, credential), Deadline.after(10)
        )
        assert [f.manifest_digest for f in found.found] == [attached.manifest_digest]

        anonymous = RegistryClient(allowed=LOCAL_REGISTRIES)
        with pytest.raises(RegistryError) as caught:
            anonymous.push_blob(registry.host, REPO, b"x", Deadline.after(10))
        assert caught.value.code == "registry_unauthorized"
        client.close()
        anonymous.close()


def test_a_registry_with_the_referrers_api_is_left_to_index_the_subject() -> None:
    """OCI-Subject on the manifest PUT: the registry indexed it, no referrers tag is written."""
    digest = sha256_digest(b"image")
    seen: list[tuple[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path))
        if request.method == "HEAD":
            return httpx.Response(404)
        if request.method == "POST":
            return httpx.Response(202, headers={"Location": "/v2/team/app/blobs/uploads/u1?s=1"})
        if request.url.path.startswith("/v2/team/app/blobs/uploads/"):
            assert request.url.params["s"] == "1"  # the upload's state is kept
            return httpx.Response(201)
        return httpx.Response(
            201,
            headers={
                "OCI-Subject": digest,
                "Docker-Content-Digest": sha256_digest(request.content),
            },
        )

    client = RegistryClient(transport=httpx.MockTransport(handler), allowed=LOCAL_REGISTRIES)
    subject = Fetched(b"image", OCI_MANIFEST, digest)
    attached = attach(
        client,
        Target("127.0.0.1:1", REPO, digest),
        subject,
        bundle_about(digest),
        BUNDLE_V03,
        {},
        Deadline.after(10),
    )
    assert attached.referrers_api and attached.fallback_tag is None
    assert [m for m, p in seen if "/manifests/" in p] == ["PUT"]
    assert not any(referrers_tag(digest) in p for _, p in seen)


def test_only_a_key_signed_bundle_without_log_or_timestamp_is_unwrapped() -> None:
    envelope = {"payloadType": "application/vnd.in-toto+json", "payload": "e30=", "signatures": []}

    def bundle(material: dict[str, object]) -> bytes:
        return json.dumps(
            {"mediaType": BUNDLE_V03, "verificationMaterial": material, "dsseEnvelope": envelope}
        ).encode()

    logless = bundle({"publicKey": {"hint": "k"}, "tlogEntries": []})
    assert json.loads(_logless_envelope(logless)) == envelope
    for kept in (
        bundle({"publicKey": {"hint": "k"}, "tlogEntries": [{"logIndex": "1"}]}),
        bundle(
            {"publicKey": {"hint": "k"}, "timestampVerificationData": {"rfc3161Timestamps": [{}]}}
        ),
        bundle({"certificate": {"rawBytes": "AA=="}, "tlogEntries": []}),
        b"not json",
    ):
        assert _logless_envelope(kept) == kept
