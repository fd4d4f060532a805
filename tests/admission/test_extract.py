"""Image extraction from every workload kind and every container list, from the objects kubectl
generated (fixtures/) and from reviews a real kube-apiserver sent (../shared/testdata)."""

from __future__ import annotations

import json

import pytest

from app.admission.extract import ExtractError, extract
from tests.admission.helpers import (
    APP,
    DEBUG,
    INIT,
    KINDS,
    POD_SPECS,
    SIDECAR,
    captured,
    load,
)

WORKLOADS = sorted(KINDS)


@pytest.mark.parametrize("fixture", WORKLOADS)
def test_every_kind_yields_every_container_list(fixture: str) -> None:
    group, _version, kind, _resource = KINDS[fixture]
    extraction = extract(group, kind, load(fixture))
    assert extraction.supported
    by_list = {(c.list, c.image) for c in extraction.containers}
    assert by_list == {("containers", APP), ("containers", SIDECAR), ("initContainers", INIT)}
    # Init containers first: the order the kubelet runs them in.
    assert extraction.images == [INIT, APP, SIDECAR]
    spec_path = ".".join(POD_SPECS[fixture])
    init = next(c for c in extraction.containers if c.list == "initContainers")
    assert init.path == f"{spec_path}.initContainers[0]"
    assert init.label == "initContainers/init"


@pytest.mark.parametrize("fixture", WORKLOADS)
def test_ephemeral_containers_in_any_pod_spec_are_extracted(fixture: str) -> None:
    obj = load(fixture)
    spec = obj
    for key in POD_SPECS[fixture]:
        spec = spec[key]
    spec["ephemeralContainers"] = [{"name": "debugger", "image": DEBUG}]
    group, _version, kind, _resource = KINDS[fixture]
    lists = {c.list: c.image for c in extract(group, kind, obj).containers}
    assert lists["ephemeralContainers"] == DEBUG


def test_cronjob_reads_the_job_template() -> None:
    extraction = extract("batch", "CronJob", load("cronjob"))
    assert extraction.containers[1].path == "spec.jobTemplate.spec.template.spec.containers[0]"


def test_ephemeralcontainers_subresource_on_a_pod_counts_only_ephemeral_containers() -> None:
    # kube-apiserver 1.23+: the whole Pod, whose other containers that subresource cannot touch.
    extraction = extract("", "Pod", load("pod-ephemeral"), "ephemeralcontainers")
    assert [(c.list, c.image) for c in extraction.containers] == [("ephemeralContainers", DEBUG)]
    # The same Pod created normally: all of it.
    assert set(extract("", "Pod", load("pod-ephemeral")).images) == {INIT, APP, SIDECAR, DEBUG}


def test_ephemeralcontainers_object_of_older_apiservers() -> None:
    extraction = extract(
        "", "EphemeralContainers", load("ephemeralcontainers"), "ephemeralcontainers"
    )
    assert extraction.supported
    (container,) = extraction.containers
    assert (container.list, container.image, container.path) == (
        "ephemeralContainers",
        DEBUG,
        "ephemeralContainers[0]",
    )


@pytest.mark.parametrize(
    ("group", "kind"),
    [("", "Service"), ("apps", "ControllerRevision"), ("example.com", "Deployment"), ("", "Scale")],
)
def test_unknown_kinds_are_reported_unsupported(group: str, kind: str) -> None:
    # A custom resource named Deployment in another group is not read as a Deployment.
    assert not extract(group, kind, load("deployment")).supported


def test_pod_template_annotations_are_kept_for_break_glass() -> None:
    obj = load("deployment")
    obj["spec"]["template"]["metadata"]["annotations"] = {"provenant.dev/break-glass": "why"}
    extraction = extract("apps", "Deployment", obj)
    assert extraction.template_annotations == {"provenant.dev/break-glass": "why"}
    assert extract("", "Pod", load("pod")).template_annotations is None


def test_duplicate_images_are_evaluated_once_but_every_container_is_named() -> None:
    obj = load("pod")
    obj["spec"]["containers"][1]["image"] = APP
    extraction = extract("", "Pod", obj)
    assert extraction.images == [INIT, APP]
    assert [c.label for c in extraction.containers_of(APP)] == [
        "containers/app",
        "containers/sidecar",
    ]


def test_a_hundred_containers() -> None:
    obj = load("pod")
    obj["spec"]["containers"] = [
        {"name": f"c{i}", "image": f"ghcr.io/acme/app{i}@sha256:{i:064x}"} for i in range(100)
    ]
    assert len(extract("", "Pod", obj).images) == 101


def test_a_missing_image_is_kept_so_the_engine_denies_it() -> None:
    obj = load("pod")
    del obj["spec"]["containers"][0]["image"]
    images = extract("", "Pod", obj).images
    assert "" in images


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda o: o.pop("spec"), "spec is missing"),
        (lambda o: o["spec"].update(template=[]), "spec.template is not an object"),
        (lambda o: o["spec"]["template"]["spec"].update(containers={}), "containers is not a list"),
        (lambda o: o["spec"]["template"]["spec"]["containers"].append("nginx"), "is not an object"),
        (
            lambda o: o["spec"]["template"]["spec"]["containers"][0].update(image=7),
            "must be strings",
        ),
        (lambda o: o["spec"]["template"].update(metadata={"annotations": []}), "annotations"),
    ],
)
def test_objects_not_shaped_like_their_kind_are_refused(mutate, message: str) -> None:
    obj = load("deployment")
    mutate(obj)
    with pytest.raises(ExtractError, match=message):
        extract("apps", "Deployment", obj)


@pytest.mark.parametrize("path", captured(), ids=lambda p: p.name)
def test_reviews_captured_from_a_real_apiserver(path) -> None:
    request = json.loads(path.read_text())["request"]
    gvk = request["kind"]
    extraction = extract(gvk["group"], gvk["kind"], request["object"], request.get("subResource"))
    assert extraction.supported
    fixture = next(f for f, k in KINDS.items() if k[2] == gvk["kind"])
    spec = request["object"]
    for key in POD_SPECS[fixture]:
        spec = spec[key]
    expected = [c["image"] for c in spec.get("initContainers", []) + spec["containers"]]
    assert extraction.images == list(dict.fromkeys(expected))


def test_captured_reviews_are_present_or_skipped() -> None:
    if not captured():
        pytest.skip("../shared/testdata/k8s-admission is absent")
    assert len(captured()) >= 10
