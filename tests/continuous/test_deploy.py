"""deploy/continuous: the watcher's RBAC asks for reading what runs and for the Lease, nothing
more; built together with deploy/ (the documented overlay), the watcher gets the same hashed
policy ConfigMap as the API."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.server import REPO

KUBECTL = shutil.which("kubectl")


def render(tmp_path: Path) -> list[dict[str, Any]]:
    if KUBECTL is None:
        pytest.skip("kubectl is not installed")
    shutil.copytree(REPO / "deploy", tmp_path / "deploy", ignore=shutil.ignore_patterns("e2e"))
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        "resources:\n  - ../deploy\n  - ../deploy/continuous\n"
    )
    result = subprocess.run(
        [KUBECTL, "kustomize", str(overlay)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def test_the_watcher_reads_what_runs_and_writes_only_its_lease(tmp_path: Path) -> None:
    objects = render(tmp_path)
    kinds = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    cluster_rules = kinds[("ClusterRole", "provenant-watcher")]["rules"]
    granted = {
        (group, resource): set(rule["verbs"])
        for rule in cluster_rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    for needed in [
        ("", "pods"),
        ("apps", "replicasets"),
        ("apps", "deployments"),
        ("batch", "jobs"),
        ("batch", "cronjobs"),
    ]:
        assert granted[needed] == {"get", "list", "watch"}, needed
    lease_rules = kinds[("Role", "provenant-watcher-election")]["rules"]
    assert lease_rules == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "verbs": ["get", "create", "update"],
        }
    ]
    watcher = kinds[("Deployment", "provenant-watcher")]
    api = kinds[("Deployment", "provenant")]
    pod = watcher["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "provenant-watcher"
    (container,) = pod["containers"]
    assert container["args"] == ["provenant", "watch"]
    env = {e["name"]: e for e in container["env"]}
    assert (
        env["PROVENANT_CONTINUOUS_LEASE_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"]
        == "metadata.namespace"
    )

    def policy_configmap(deployment: dict[str, Any]) -> str:
        volumes = deployment["spec"]["template"]["spec"]["volumes"]
        return next(v["configMap"]["name"] for v in volumes if v["name"] == "policy-files")

    assert policy_configmap(watcher) == policy_configmap(api) != "provenant-policies"
