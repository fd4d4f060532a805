"""End to end against a real kube-apiserver (1.20.2, tests/e2e/kube.py): the watcher lists and
watches Pods created with kubectl, reads the imageID a kubelet would report through the status
subresource, resolves owners to workloads, and keeps findings current as an attestation is
revoked, the policy set tightens and an exemption runs out (on an injected clock); a real
receiver on 127.0.0.1 gets the notifications; the watch resumes across an apiserver restart
without losing a change; of two replicas, one holds the Lease. On SQLite and PostgreSQL.

Without the binary these tests skip (fail under CI=true), like tests/e2e/test_kube_apiserver.py.
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from app.continuous.kube import kube_client
from app.continuous.notify import Endpoint
from app.continuous.runner import Options
from app.continuous.service import ContinuousValidator, Election
from tests.admission.conftest import POLICIES, upload, write_policy_dir
from tests.conftest import BACKENDS, IN_CI, make_app
from tests.conftest import _empty_tables as empty_tables
from tests.continuous.helpers import REPOSITORY, FakeClock, Receiver, image
from tests.e2e.kube import KubeCluster, Kubectl, missing_tools, wait_until
from tests.helpers import TokenFactory
from tests.server import REPO, ServerProcess
from tests.sigstore_stack import SigstoreTestStack

pytestmark = pytest.mark.e2e

NAMESPACE = "apps"
SECRET = "e2e-notification-secret"
FROM_MAIN = 'predicate.buildDefinition.externalParameters.workflow.ref == "refs/heads/main"'


@dataclass
class Env:
    cluster: KubeCluster
    kubectl: Kubectl
    client: TestClient
    policy_dir: Path
    receiver: Receiver
    headers: dict[str, str]
    admin: dict[str, str]
    uploader: dict[str, str]
    db_url: str


@pytest.fixture(scope="module", params=BACKENDS)
def env(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Env]:
    reason = missing_tools()
    if reason:
        if IN_CI:
            pytest.fail(f"{reason} (required because CI=true)", pytrace=False)
        pytest.skip(reason)
    work = tmp_path_factory.mktemp(f"continuous-{request.param}")
    if request.param == "sqlite":
        db_url = f"sqlite:///{work / 'provenant.db'}"
        shutil.copy(request.getfixturevalue("sqlite_template"), work / "provenant.db")
    else:
        db_url = request.getfixturevalue("pg_server_url")
        empty_tables(db_url)
    policy_dir = write_policy_dir(work / "policies", SigstoreTestStack.get())
    cluster = KubeCluster(work / "kube")
    app = make_app(db_url, policy_dir)
    with cluster, TestClient(app) as client, Receiver() as receiver:
        kubectl = cluster.kubectl
        assert kubectl is not None
        kubectl("create", "namespace", NAMESPACE)
        kubectl("create", "namespace", "provenant")
        tokens = TokenFactory(app.state.db)
        yield Env(
            cluster,
            kubectl,
            client,
            policy_dir,
            receiver,
            tokens("read"),
            tokens("admin"),
            tokens("upload"),
            db_url,
        )


def validator(env: Env, clock: FakeClock | None = None, **election: Any) -> ContinuousValidator:
    app: Any = env.client.app
    assert env.cluster.apiserver is not None
    kubeconfig = env.cluster.apiserver.kubeconfig
    return ContinuousValidator(
        app.state.db,
        app.state.policies,
        lambda: kube_client(kubeconfig),
        options=Options(cluster="e2e", poll=0.2),
        endpoints=[Endpoint(name="security", url=env.receiver.url, secret=SECRET)],
        clock=clock,
        election=Election(namespace="provenant", **election) if election else None,
    )


def deployment(env: Env, name: str, spec_image: str) -> None:
    """A Deployment, its ReplicaSet and one Pod, linked by owner references as the controllers
    would link them (no controller-manager runs here)."""
    labels = {"app": name}
    template = {
        "metadata": {"labels": labels},
        "spec": {"containers": [{"name": "app", "image": spec_image}]},
    }
    env.kubectl.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"selector": {"matchLabels": labels}, "template": template},
        }
    )
    uid = env.kubectl(
        "get", "deployment", name, "-n", NAMESPACE, "-o", "jsonpath={.metadata.uid}"
    ).stdout
    owner = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": name,
        "uid": uid,
        "controller": True,
    }
    env.kubectl.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"{name}-5d8f",
                "namespace": NAMESPACE,
                "ownerReferences": [owner],
            },
            "spec": {"selector": {"matchLabels": labels}, "template": template},
        }
    )
    rs_uid = env.kubectl(
        "get", "replicaset", f"{name}-5d8f", "-n", NAMESPACE, "-o", "jsonpath={.metadata.uid}"
    ).stdout
    pod_owner = {**owner, "kind": "ReplicaSet", "name": f"{name}-5d8f", "uid": rs_uid}
    env.kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{name}-5d8f-x1",
                "namespace": NAMESPACE,
                "labels": labels,
                "ownerReferences": [pod_owner],
            },
            "spec": template["spec"],
        }
    )


def report_running(env: Env, pod: str, image_id: str) -> None:
    """What a kubelet does once the container runs: PATCH the Pod's status subresource."""
    apiserver = env.cluster.apiserver
    assert apiserver is not None
    status = {
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {
                    "name": "app",
                    "image": image_id.split("@")[0],
                    "imageID": f"docker-pullable://{image_id}",
                    "ready": True,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": "2026-12-03T00:00:00Z"}},
                }
            ],
        }
    }
    response = httpx.patch(
        f"{apiserver.url}/api/v1/namespaces/{NAMESPACE}/pods/{pod}/status",
        json=status,
        headers={
            "Authorization": f"Bearer {apiserver.admin_token}",
            "Content-Type": "application/merge-patch+json",
        },
        verify=ssl.create_default_context(cafile=str(apiserver.cert)),
    )
    assert response.status_code == 200, response.text


def findings(env: Env, **params: str) -> dict[str, dict[str, Any]]:
    response = env.client.get("/v1/findings", params=params, headers=env.headers)
    assert response.status_code == 200, response.text
    return {f"{i['workload']['kind']}/{i['workload']['name']}": i for i in response.json()["items"]}


def status_of(env: Env, workload: str) -> str | None:
    finding = findings(env).get(workload)
    return finding["status"] if finding else None


def wait_status(env: Env, workload: str, status: str | None, what: str) -> None:
    wait_until(lambda: status_of(env, workload) == status, timeout=20, what=what)


def test_findings_follow_the_cluster_and_every_change_they_depend_on(env: Env) -> None:
    stack = SigstoreTestStack.get()
    revoked_id = upload(env.client, stack, env.uploader, image("web"))
    upload(env.client, stack, env.uploader, image("api"))
    expires = "2030-01-01T00:00:00Z"
    exempting = POLICIES.replace('["registry.k8s.io/pause*"]', '["ghcr.io/legacy/**"]').replace(
        POLICIES.split("expires: ")[1].split("\n")[0], expires
    )
    (env.policy_dir / "policies.yaml").write_text(exempting)
    env.client.app.state.policies.reload()  # type: ignore[attr-defined]
    clock = FakeClock()
    clock.at = clock.at.replace(year=2029, month=1, day=1)
    watcher = validator(env, clock).start()
    try:
        # A tag-only spec: until the kubelet reports the digest, the tag is all there is.
        deployment(env, "web", f"{REPOSITORY}:v1")
        wait_status(env, "Deployment/web", "violating", "the tag-only web to be found")
        assert "has no digest" in findings(env)["Deployment/web"]["reasons"][0]
        report_running(env, "web-5d8f-x1", image("web"))
        wait_until(
            lambda: findings(env).get("Deployment/web", {}).get("image") == image("web"),
            timeout=20,
            what="the reported digest to replace the tag",
        )
        assert status_of(env, "Deployment/web") == "compliant"
        deployment(env, "api", image("api"))
        deployment(env, "legacy", "ghcr.io/legacy/tool@sha256:" + "0" * 64)
        wait_status(env, "Deployment/api", "compliant", "api to be compliant")
        wait_status(env, "Deployment/legacy", "exempt", "legacy to be exempt")

        # A revocation: its answer names the running workload, whose finding turns at once.
        started = time.monotonic()
        response = env.client.post(
            f"/v1/attestations/{revoked_id}/revoke",
            json={"reason": "compromised runner"},
            headers=env.admin,
        )
        assert response.status_code == 200, response.text
        assert [(w["kind"], w["name"]) for w in response.json()["affected_workloads"]] == [
            ("Deployment", "web")
        ]
        wait_status(env, "Deployment/web", "violating", "the revocation to reach the finding")
        wait_until(
            lambda: any(
                e["data"]["subject"] == "apps/Deployment/web/app" and e["data"]["to"] == "violating"
                for e in env.receiver.events()
            ),
            timeout=10,
            what="the revocation's notification",
        )
        assert time.monotonic() - started < 10

        # A stricter policy set: the api image's provenance no longer passes.
        stricter = exempting.replace(
            "      predicateType: https://slsa.dev/provenance/v1\n",
            "      predicateType: https://slsa.dev/provenance/v1\n"
            "      conditions:\n"
            f"        - expression: '{FROM_MAIN}'\n",
            1,
        )
        (env.policy_dir / "policies.yaml").write_text(stricter)
        env.client.app.state.policies.reload()  # type: ignore[attr-defined]
        watcher.policies_reloaded()
        wait_status(env, "Deployment/api", "violating", "the stricter policy to reach api")

        # The exemption runs out on the injected clock.
        clock.at = clock.at.replace(year=2030, month=1, day=2)
        wait_status(env, "Deployment/legacy", "violating", "the exemption to expire")
        wait_until(
            lambda: any(
                e["data"]["subject"] == "apps/Deployment/legacy/app" for e in env.receiver.events()
            ),
            timeout=10,
            what="the expiry's notification",
        )

        # Deleting the Pod ends its findings.
        env.kubectl("delete", "pod", "api-5d8f-x1", "-n", NAMESPACE, "--wait=false")
        wait_status(env, "Deployment/api", None, "api's finding to go")
    finally:
        watcher.stop()


def test_the_watch_resumes_across_an_apiserver_restart_without_losing_a_change(env: Env) -> None:
    watcher = validator(env).start()
    try:
        deployment(env, "before", image("before"))
        wait_status(env, "Deployment/before", "violating", "the first pod")
        pod_watcher = watcher.watcher
        assert pod_watcher is not None and pod_watcher.relists == 1
        apiserver = env.cluster.apiserver
        assert apiserver is not None
        apiserver.stop()
        apiserver.start().wait_ready()
        # Changes made as soon as the apiserver is back, while the watcher is reconnecting.
        deployment(env, "after", image("after"))
        env.kubectl("delete", "pod", "before-5d8f-x1", "-n", NAMESPACE, "--wait=false")
        wait_status(env, "Deployment/after", "violating", "the pod created after the restart")
        wait_status(env, "Deployment/before", None, "the pod deleted after the restart")
        assert pod_watcher.resumes >= 1
        assert pod_watcher.relists == 1  # resumed from its resourceVersion, not relisted
    finally:
        watcher.stop()


def test_of_two_replicas_one_holds_the_lease_and_the_other_takes_over(env: Env) -> None:
    first = validator(env, identity="replica-a", duration=3, renew=0.5).start()
    wait_until(first.leading.is_set, timeout=20, what="the first replica to lead")
    second = validator(env, identity="replica-b", duration=3, renew=0.5).start()
    try:
        time.sleep(2)
        assert first.leading.is_set() and not second.leading.is_set()
        holder = env.kubectl(
            "get",
            "lease",
            "provenant-watcher",
            "-n",
            "provenant",
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ).stdout
        assert holder == "replica-a"
        first.stop()  # releases the Lease on the way out
        wait_until(second.leading.is_set, timeout=20, what="the second replica to take over")
        holder = env.kubectl(
            "get",
            "lease",
            "provenant-watcher",
            "-n",
            "provenant",
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ).stdout
        assert holder == "replica-b"
    finally:
        first.stop()
        second.stop()


def test_the_watcher_inside_serve_and_as_provenant_watch_and_the_findings_table(
    env: Env, tmp_path: Path
) -> None:
    """The real processes: `provenant serve` with PROVENANT_CONTINUOUS_ENABLED, `provenant watch`
    on its own (another cluster name, same database), and `provenant findings` reading the
    server's API."""
    apiserver = env.cluster.apiserver
    assert apiserver is not None
    kube = {"PROVENANT_KUBECONFIG": str(apiserver.kubeconfig), "PROVENANT_CONTINUOUS_POLL": "0.2"}
    served = {
        **kube,
        "PROVENANT_CONTINUOUS_ENABLED": "true",
        "PROVENANT_CONTINUOUS_CLUSTER": "served",
    }
    server = ServerProcess(env.db_url, env.policy_dir, tmp_path, env=served)
    watch_env = {
        **server.env,
        **kube,
        "PROVENANT_CONTINUOUS_CLUSTER": "standalone",
        "PROVENANT_LOG_LEVEL": "info",
    }
    with server, (tmp_path / "watch.log").open("wb") as log:
        watch = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "watch"],
            cwd=REPO,
            env=watch_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deployment(env, "cli", f"{REPOSITORY}:cli")

            def both() -> bool:
                response = env.client.get(
                    "/v1/findings",
                    params={"namespace": NAMESPACE, "limit": 1000},
                    headers=env.headers,
                )
                return {
                    i["cluster"] for i in response.json()["items"] if i["workload"]["name"] == "cli"
                } == {"served", "standalone"}

            wait_until(both, timeout=30, what="both watchers' findings for the new Deployment")
            token = env.headers["Authorization"].split()[1]
            result = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "app.cli",
                    "findings",
                    "--namespace",
                    NAMESPACE,
                    "--status",
                    "violating",
                ],
                cwd=REPO,
                env={**os.environ, "PROVENANT_SERVER": server.base_url, "PROVENANT_TOKEN": token},
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert result.returncode == 0, result.stderr
            assert "Deployment/cli" in result.stdout
            assert f"{REPOSITORY}:cli" in result.stdout
            assert "violating" in result.stdout
        finally:
            watch.terminate()
            assert watch.wait(20) == 0, (tmp_path / "watch.log").read_text()
