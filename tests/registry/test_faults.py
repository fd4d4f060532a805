"""Registry faults, each a clear error with nothing stored half; and the OCI 1.1 referrers
API, on answers shaped as the distribution spec gives them (no registry installable here
implements it: distribution 2.8 predates it)."""

from __future__ import annotations

import json
import threading
import time

import pytest
from sqlalchemy import func, select

from app.attestations.models import Attestation
from app.db import Database
from app.registry.client import OCI_INDEX, OCI_MANIFEST, Deadline, RegistryClient
from app.registry.errors import RegistryError
from app.registry.models import RegistryOrigin
from app.verification.trust import TrustStore
from tests.registry import cosign_format as cf
from tests.registry.conftest import make_service
from tests.registry.fake import Answer, FakeRegistry
from tests.registry.tools import BUNDLE_V03, LOCAL_REGISTRIES, sha256_digest
from tests.sigstore_stack import SigstoreTestStack

REPO = "team/app"
IMAGE = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {}, "layers": []})
IMAGE_BYTES = IMAGE.encode()
DIGEST = sha256_digest(IMAGE_BYTES)


def _serve_image(fake: FakeRegistry) -> None:
    fake.routes[f"/v2/{REPO}/manifests/{DIGEST}"] = Answer(
        200, IMAGE_BYTES, {"Content-Type": OCI_MANIFEST}
    )


def _count(db: Database) -> tuple[int, int]:
    with db.session() as session:
        return (
            int(session.scalar(select(func.count(Attestation.id))) or 0),
            int(session.scalar(select(func.count(RegistryOrigin.id))) or 0),
        )


def _referrer(fake: FakeRegistry, document: bytes, *, subject: str = DIGEST) -> str:
    """A referrer manifest (spec: "Pushing Manifests with Subject") holding ``document``."""
    layer = sha256_digest(document)
    fake.routes[f"/v2/{REPO}/blobs/{layer}"] = Answer(200, document)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": BUNDLE_V03,
            "config": {
                "mediaType": "application/vnd.oci.empty.v1+json",
                "digest": sha256_digest(b"{}"),
                "size": 2,
            },
            "layers": [{"mediaType": BUNDLE_V03, "digest": layer, "size": len(document)}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": len(IMAGE_BYTES)},
        }
    ).encode()
    digest = sha256_digest(manifest)
    fake.routes[f"/v2/{REPO}/manifests/{digest}"] = Answer(
        200, manifest, {"Content-Type": OCI_MANIFEST}
    )
    return digest


def _referrers_index(fake: FakeRegistry, referrers: list[tuple[str, str]]) -> None:
    # spec "Listing Referrers": 200, Content-Type application/vnd.oci.image.index.v1+json,
    # manifests[] descriptors carrying artifactType (and annotations).
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": OCI_MANIFEST, "digest": d, "size": 1, "artifactType": t}
                for d, t in referrers
            ],
        }
    ).encode()
    fake.routes[f"/v2/{REPO}/referrers/{DIGEST}"] = Answer(200, index, {"Content-Type": OCI_INDEX})


def test_the_referrers_api_is_asked_first_and_filtered_by_artifact_type(
    fake: FakeRegistry, db: Database, trust: TrustStore, stack: SigstoreTestStack
) -> None:
    _serve_image(fake)
    bundle = stack.sign_dsse(cf.provenance("app", DIGEST)).encode()
    good = _referrer(fake, bundle)
    _referrers_index(fake, [(good, BUNDLE_V03), ("sha256:" + "0" * 64, "application/spdx+json")])
    service = make_service(db, trust)

    result = service.pull(f"{fake.host}/{REPO}@{DIGEST}")

    assert result.referrers_api is True
    [item] = result.items
    assert (item.scheme, item.status, item.manifest_digest) == ("referrers-api", "created", good)
    assert f"/v2/{REPO}/manifests/sha256-{DIGEST.split(':')[1]}" not in fake.hits  # no fallback
    assert ("sha256:" + "0" * 64) not in " ".join(fake.hits)  # filtered out, never fetched


def test_a_referrer_whose_subject_is_another_image_is_rejected(
    fake: FakeRegistry, db: Database, trust: TrustStore, stack: SigstoreTestStack
) -> None:
    _serve_image(fake)
    bundle = stack.sign_dsse(cf.provenance("app", DIGEST)).encode()
    stray = _referrer(fake, bundle, subject="sha256:" + "1" * 64)
    _referrers_index(fake, [(stray, BUNDLE_V03)])

    [item] = make_service(db, trust).pull(f"{fake.host}/{REPO}@{DIGEST}").items

    assert (item.status, item.code) == ("rejected", "image_digest_mismatch")
    assert _count(db) == (0, 0)


def test_a_layer_whose_content_does_not_match_its_digest_is_rejected(
    fake: FakeRegistry, db: Database, trust: TrustStore, stack: SigstoreTestStack
) -> None:
    _serve_image(fake)
    bundle = stack.sign_dsse(cf.provenance("app", DIGEST)).encode()
    referrer = _referrer(fake, bundle)
    layer = sha256_digest(bundle)
    fake.routes[f"/v2/{REPO}/blobs/{layer}"] = Answer(200, bundle.replace(b"{", b"{ ", 1))
    _referrers_index(fake, [(referrer, BUNDLE_V03)])

    [item] = make_service(db, trust).pull(f"{fake.host}/{REPO}@{DIGEST}").items

    assert (item.status, item.code) == ("rejected", "registry_digest_mismatch")
    assert _count(db) == (0, 0)


def test_an_oversized_manifest_is_refused_while_it_streams(
    fake: FakeRegistry, db: Database, trust: TrustStore
) -> None:
    huge = b'{"schemaVersion": 2, "layers": [' + b" " * 5000 + b"]}"
    fake.routes[f"/v2/{REPO}/manifests/v1"] = Answer(200, huge, {"Content-Type": OCI_MANIFEST})
    service = make_service(db, trust, max_manifest_bytes=4096)

    with pytest.raises(RegistryError) as caught:
        service.pull(f"{fake.host}/{REPO}:v1")

    assert caught.value.code == "manifest_too_large"
    assert _count(db) == (0, 0)


def test_429_is_retried_after_the_time_the_registry_asks(
    fake: FakeRegistry, db: Database, trust: TrustStore
) -> None:
    fake.routes[f"/v2/{REPO}/manifests/{DIGEST}"] = [
        Answer(429, b"", {"Retry-After": "1"}),
        Answer(200, IMAGE_BYTES, {"Content-Type": OCI_MANIFEST}),
    ]
    started = time.monotonic()

    result = make_service(db, trust).pull(f"{fake.host}/{REPO}@{DIGEST}")

    assert result.digest == DIGEST
    assert time.monotonic() - started >= 1.0
    assert fake.hits.count(f"/v2/{REPO}/manifests/{DIGEST}") == 2


def test_429_asking_for_more_than_the_deadline_fails_at_once(
    fake: FakeRegistry, db: Database, trust: TrustStore
) -> None:
    fake.routes[f"/v2/{REPO}/manifests/{DIGEST}"] = Answer(429, b"", {"Retry-After": "120"})
    started = time.monotonic()

    with pytest.raises(RegistryError) as caught:
        make_service(db, trust).pull(f"{fake.host}/{REPO}@{DIGEST}", timeout=5)

    assert caught.value.code == "registry_rate_limited"
    assert "120s" in caught.value.message
    assert time.monotonic() - started < 2


def test_a_hanging_registry_costs_the_deadline_and_no_more(
    fake: FakeRegistry, db: Database, trust: TrustStore
) -> None:
    fake.routes[f"/v2/{REPO}/manifests/{DIGEST}"] = Answer(200, IMAGE_BYTES, delay=30)
    started = time.monotonic()

    with pytest.raises(RegistryError) as caught:
        make_service(db, trust).pull(f"{fake.host}/{REPO}@{DIGEST}", timeout=0.5)

    assert caught.value.code == "registry_timeout"
    assert time.monotonic() - started < 1.5
    assert _count(db) == (0, 0)


def test_plain_http_is_refused_for_a_remote_registry_unless_listed_insecure() -> None:
    client = RegistryClient(insecure=["registry.internal:5000"])

    assert client._base_url("registry.internal:5000") == "http://registry.internal:5000"
    assert client._base_url("localhost:5000") == "http://localhost:5000"
    assert client._base_url("ghcr.io") == "https://ghcr.io"
    assert client._base_url("docker.io") == "https://index.docker.io"


def test_the_per_registry_cap_bounds_requests_in_flight(fake: FakeRegistry) -> None:
    fake.routes[f"/v2/{REPO}/manifests/{DIGEST}"] = Answer(200, IMAGE_BYTES, delay=0.6)
    client = RegistryClient(concurrency=1, allowed=LOCAL_REGISTRIES)
    first = threading.Thread(
        target=client.manifest, args=(fake.host, REPO, DIGEST, Deadline.after(5))
    )
    first.start()
    time.sleep(0.1)

    with pytest.raises(RegistryError) as caught:
        client.manifest(fake.host, REPO, DIGEST, Deadline.after(0.3))
    first.join()

    # The second waited for the one slot, past its deadline, instead of piling on.
    assert caught.value.code == "registry_timeout"
    assert "request slot" in caught.value.message
    assert fake.hits.count(f"/v2/{REPO}/manifests/{DIGEST}") == 1


def test_concurrent_misses_of_one_digest_share_one_fetch_and_a_miss_is_remembered(
    fake: FakeRegistry, db: Database, trust: TrustStore
) -> None:
    fake.routes[f"/v2/{REPO}/manifests/{DIGEST}"] = Answer(
        200, IMAGE_BYTES, {"Content-Type": OCI_MANIFEST}, delay=0.3
    )
    service = make_service(db, trust)
    image = f"{fake.host}/{REPO}@{DIGEST}"
    threads = [
        threading.Thread(target=service.fetch_missing, args=([image],), kwargs={"timeout": 3})
        for _ in range(5)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # One round for five admissions: the image manifest, the referrers API, the tag
    # fallback, .sig and .att.
    assert fake.hits.count(f"/v2/{REPO}/manifests/{DIGEST}") == 1
    rounds = len(fake.hits)

    assert service.fetch_missing([image], timeout=3) == 0  # found nothing: remembered
    assert len(fake.hits) == rounds

    fake.routes.clear()  # the registry now fails: that failure is remembered too
    other = f"{fake.host}/{REPO}@sha256:{'2' * 64}"
    for _ in range(2):
        with pytest.raises(RegistryError) as caught:
            service.fetch_missing([other], timeout=3)
        assert caught.value.code == "registry_not_found"
    assert len(fake.hits) == rounds + 1


def test_a_registry_without_the_referrers_api_is_probed_once_not_per_image(
    fake: FakeRegistry, db: Database, trust: TrustStore
) -> None:
    _serve_image(fake)
    service = make_service(db, trust)

    for _ in range(3):
        assert service.pull(f"{fake.host}/{REPO}@{DIGEST}").referrers_api is False

    assert sum("/referrers/" in hit for hit in fake.hits) == 1
    # Each pull still reads the referrers tag schema, which is where referrers are then.
    assert fake.hits.count(f"/v2/{REPO}/manifests/sha256-{DIGEST.split(':')[1]}") == 3
