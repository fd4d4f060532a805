"""Admission cost is linear in the containers of an object, and bounded by
PROVENANT_MAX_CONTAINERS_PER_OBJECT: an object over it is denied, unevaluated, naming the limit
(issue 11). The figures are bench/containers.py's; here, only what can be counted."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.admission.extract import Container, Extraction
from app.admission.lookup import image_digests
from app.db import Database
from tests.admission.helpers import APP, digest_of, review, with_images
from tests.admission.test_validate import decisions, validate


class CountingContainers(tuple):
    """The container tuple, counting how often it is walked."""

    walks = 0

    def __iter__(self):
        type(self).walks += 1
        return super().__iter__()


def test_finding_each_images_containers_walks_the_containers_once() -> None:
    containers = CountingContainers(
        Container("containers", n, f"c{n}", f"ghcr.io/acme/app{n % 50}@sha256:{'a' * 64}", "")
        for n in range(200)
    )
    extraction = Extraction(True, containers)
    CountingContainers.walks = 0
    for image in extraction.images:
        assert [c.image for c in extraction.containers_of(image)] == [image] * 4
    # Before the fix every image scanned all the containers again: 51 walks here, and a
    # 10,000-container Pod took 18 s.
    assert CountingContainers.walks == 1
    assert extraction.containers_of("ghcr.io/acme/elsewhere:1") == []


def test_image_digests_are_unique_and_in_order() -> None:
    images = [f"ghcr.io/acme/app{n % 3}@sha256:{digest_of(str(n % 3))}" for n in range(9)]
    assert image_digests(images) == [("sha256", digest_of(str(n))) for n in range(3)]


def limited(app: FastAPI, limit: int) -> None:
    app.state.settings = app.state.settings.model_copy(update={"max_containers_per_object": limit})


def test_an_object_over_the_container_limit_is_denied_unevaluated_and_recorded(
    client: TestClient, app: FastAPI, db: Database, attest, webhook: dict
) -> None:
    attest(APP)
    limited(app, 3)
    at_limit = validate(client, review(with_images("deployment", [APP, APP], [APP])), webhook)
    assert at_limit["allowed"] is True

    over = validate(client, review(with_images("deployment", [APP, APP, APP], [APP])), webhook)
    assert over["allowed"] is False
    message = over["status"]["message"]
    assert (
        "the object has 4 containers, more than PROVENANT_MAX_CONTAINERS_PER_OBJECT (3); "
        "it was not evaluated" in message
    )
    assert over["auditAnnotations"]["outcome"] == "denied"
    recorded = decisions(db)[-1]
    assert recorded.id == over["auditAnnotations"]["decision-id"]
    assert recorded.allowed is False
    assert recorded.explanation["evaluation"] is None  # never evaluated
    assert recorded.images == []  # nor indexed image by image


def test_the_default_limit_admits_real_workloads_and_refuses_thousands(
    client: TestClient, app: FastAPI, webhook: dict
) -> None:
    assert app.state.settings.max_containers_per_object == 1000
    images = [f"ghcr.io/acme/app{n}@sha256:{digest_of(str(n))}" for n in range(1001)]
    answer = validate(client, review(with_images("pod", images)), webhook)
    assert answer["allowed"] is False
    assert "PROVENANT_MAX_CONTAINERS_PER_OBJECT (1000)" in answer["status"]["message"]
