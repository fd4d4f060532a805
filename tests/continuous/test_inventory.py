"""From Pods to running images and workloads, without a cluster."""

from __future__ import annotations

from app.continuous.inventory import FindingKey, Inventory, Workload, running_image, running_pod
from tests.continuous.helpers import REPOSITORY, digest, image, pod


def resolve(namespace: str, kind: str, name: str) -> Workload:
    # A ReplicaSet "web-5d8f" belongs to Deployment "web", as the apiserver would say.
    if kind == "ReplicaSet":
        return Workload("Deployment", name.rsplit("-", 1)[0])
    return Workload(kind, name)


def test_the_reported_digest_is_what_runs_even_for_a_tag_only_spec() -> None:
    reported = f"docker-pullable://mirror.example/acme/app@sha256:{digest('a')}"
    assert running_image(f"{REPOSITORY}:v1", reported) == image("a")


def test_without_a_reported_digest_the_spec_reference_is_what_there_is() -> None:
    assert running_image(f"{REPOSITORY}:v1", None) == f"{REPOSITORY}:v1"
    # Docker's bare image id is the config digest, which no attestation names.
    assert running_image(f"{REPOSITORY}:v1", f"sha256:{digest('a')}") == f"{REPOSITORY}:v1"


def test_a_pod_is_attributed_to_the_workload_at_the_top_of_its_controller_chain() -> None:
    running = running_pod(
        pod("web-5d8f-x", f"{REPOSITORY}:v1", owner=("ReplicaSet", "web-5d8f")), resolve
    )
    assert running is not None
    assert running.workload == Workload("Deployment", "web")
    bare = running_pod(pod("debug", image("a")), resolve)
    assert bare is not None and bare.workload == Workload("Pod", "debug")


def test_finished_pods_run_nothing() -> None:
    assert running_pod(pod("job-x", image("a"), phase="Succeeded"), resolve) is None


def test_the_inventory_counts_pods_per_key_and_reports_what_changed() -> None:
    inventory = Inventory()
    first = running_pod(pod("web-1", image("a"), owner=("ReplicaSet", "web-1a"), uid="1"), resolve)
    second = running_pod(pod("web-2", image("a"), owner=("ReplicaSet", "web-1b"), uid="2"), resolve)
    assert first and second
    key = FindingKey("apps", "Deployment", "web", "app", image("a"))
    assert inventory.put(first) == {key}
    assert inventory.put(second) == {key}  # one more pod: the finding's count changes
    assert inventory.put(second) == set()  # the same pod again: nothing changed
    assert inventory.counts() == {key: 2}
    assert inventory.remove("1") == {key}
    assert inventory.counts() == {key: 1}
    assert inventory.remove("2") == {key}
    assert inventory.counts() == {}


def test_a_relist_drops_pods_deleted_while_the_watch_was_down() -> None:
    inventory = Inventory()
    old = running_pod(pod("old", image("a"), uid="1"), resolve)
    new = running_pod(pod("new", image("b"), uid="2"), resolve)
    assert old and new
    inventory.put(old)
    changed = inventory.replace([new])
    assert changed == old.keys() | new.keys()
    assert set(inventory.counts()) == new.keys()
