"""End to end: a real kube-apiserver (1.20.2) calls Provenant's admission webhook over TLS while
kubectl creates, updates and dry-runs Pods and workloads.

One control plane (etcd + kube-apiserver, see tests/e2e/kube.py) and one Provenant server per
module and database backend, SQLite and PostgreSQL (what deploy/ runs on): starting them is
most of the cost, 5 to 10 s a backend on 2 cores; each test then costs a few kubectl calls.

The binary comes from deploy/e2e/build-kube-apiserver.sh. Without it these tests skip, except
with CI=true, where they fail: CI builds it first, so a missing binary there is a broken build.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from app.admission.models import Decision
from app.db import Database
from tests.attestations.conftest import statement
from tests.conftest import BACKENDS, IN_CI
from tests.conftest import _empty_tables as empty_tables
from tests.e2e.kube import (
    ADMIN_USER,
    KubeCluster,
    Kubectl,
    load_webhook_configuration,
    missing_tools,
    render_webhook_configuration,
    wait_until,
)
from tests.helpers import TokenFactory
from tests.server import ServerProcess
from tests.sigstore_stack import DEFAULT_IDENTITY, DEFAULT_ISSUER, SigstoreTestStack

pytestmark = pytest.mark.e2e

NAMESPACE = "apps"
REPOSITORY = "ghcr.io/acme/app"
SLSA_V1 = "https://slsa.dev/provenance/v1"


def _digest(label: str) -> str:
    return hashlib.sha256(f"kube-e2e-{label}".encode()).hexdigest()


# Attested (a signed SLSA statement is uploaded for each) and unattested images, by digest.
SIGNED = f"{REPOSITORY}@sha256:{_digest('signed')}"
SIGNED_NEXT = f"{REPOSITORY}@sha256:{_digest('signed-next')}"
UNSIGNED = f"{REPOSITORY}@sha256:{_digest('unsigned')}"
TAG_ONLY = f"{REPOSITORY}:v1.2.3"

POLICY = f"""\
apiVersion: provenant.dev/v1alpha1
kind: ImagePolicy
metadata: {{name: acme-release}}
spec:
  images: ["{REPOSITORY}"]
  mode: enforce
  authorities:
    - name: acme-ci
      keyless:
        trustRoot: test-stack
        identities:
          - issuer: {DEFAULT_ISSUER}
            subjectRegExp: '^{re.escape(DEFAULT_IDENTITY)}$'
  require:
    - predicateType: {SLSA_V1}
      authorities: [acme-ci]
---
apiVersion: provenant.dev/v1alpha1
kind: PolicyConfig
metadata: {{name: e2e}}
spec:
  noMatch: deny
  tagOnly: deny
  excludedNamespaces: [kube-system]
  breakGlass: {{enabled: true, namespaces: ["*"]}}
"""


@dataclass
class Env:
    cluster: KubeCluster
    kubectl: Kubectl
    server: ServerProcess
    db_url: str
    read: dict[str, str]
    webhook_name: str


@pytest.fixture(scope="module", params=BACKENDS)
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    reason = missing_tools()
    if reason:
        if IN_CI:
            pytest.fail(f"{reason} (required because CI=true)", pytrace=False)
        pytest.skip(reason)

    work = tmp_path_factory.mktemp(f"kube-e2e-{request.param}")
    if request.param == "sqlite":
        db_url = f"sqlite:///{work / 'provenant.db'}"
        shutil.copy(request.getfixturevalue("sqlite_template"), work / "provenant.db")
    else:
        # The session's database (skips, or fails in CI, when PostgreSQL is unreachable),
        # emptied of what earlier tests on this worker left.
        db_url = request.getfixturevalue("pg_server_url")
        empty_tables(db_url)
    policy_dir = work / "policies"
    (policy_dir / "trust").mkdir(parents=True)
    stack = SigstoreTestStack.get()
    stack.write_trusted_root(policy_dir / "trust" / "test-stack.json")
    (policy_dir / "policy.yaml").write_text(POLICY)

    db = Database(db_url, pool_size=1)
    tokens = TokenFactory(db)
    admission_token = tokens("admission", name="kube-apiserver")["Authorization"].split()[1]
    upload, read = tokens("upload"), tokens("read")
    db.dispose()

    (work / "provenant").mkdir()
    server = ServerProcess(db_url, policy_dir, work / "provenant", tls=True)
    assert server.tls_files is not None
    cluster = KubeCluster(work / "kube", {f"127.0.0.1:{server.port}": admission_token})
    try:
        # The apiserver's boot (seconds: etcd, storage, bootstrap objects) is the long pole;
        # Provenant starts and gets its attestations meanwhile.
        cluster.start()
        server.start()
        with server.client() as client:
            for image in (SIGNED, SIGNED_NEXT):
                bundle = stack.sign_dsse(statement(REPOSITORY, image.split(":")[-1]))
                response = client.post("/v1/attestations", content=bundle, headers=upload)
                assert response.status_code in (200, 201), response.text
        cluster.wait_ready()
        kubectl = cluster.kubectl
        assert kubectl is not None
        kubectl("create", "namespace", NAMESPACE)

        configuration = load_webhook_configuration()
        rendered = render_webhook_configuration(
            configuration, server.base_url, server.tls_files[0].read_bytes()
        )
        kubectl.apply(rendered)
        webhook_name = rendered["webhooks"][0]["name"]
        _wait_until_webhook_answers(kubectl, webhook_name, server, cluster)
        yield Env(cluster, kubectl, server, db_url, read, webhook_name)
    finally:
        cluster.stop()
        server.stop()


def _wait_until_webhook_answers(
    kubectl: Kubectl, webhook_name: str, server: ServerProcess, cluster: KubeCluster
) -> None:
    """The apiserver picks up a new webhook configuration from its informer, a moment after the
    create returns: until then objects are admitted unchecked. A server-side dry run of a
    tag-only Pod shows when Provenant's answer comes back."""
    probe = pod("webhook-probe", TAG_ONLY)
    last: list[str] = []

    def answered() -> bool:
        result = kubectl.create(probe, dry_run=True, check=False)
        last[:] = [result.stdout + result.stderr]
        return f'admission webhook "{webhook_name}" denied the request' in result.stderr

    try:
        wait_until(answered, timeout=20, what="the webhook to answer")
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}\nlast kubectl output: {last}\n{cluster.logs()}\n--- provenant ---\n"
            f"{server.log()[-3000:]}"
        ) from None


# --- object builders -------------------------------------------------------------------------


def _pod_spec(image: str, init_image: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "app", "image": image}]}
    if init_image:
        spec["initContainers"] = [{"name": "init", "image": init_image}]
    return spec


def pod(
    name: str,
    image: str,
    *,
    init_image: str | None = None,
    namespace: str = NAMESPACE,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if annotations:
        metadata["annotations"] = annotations
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": _pod_spec(image, init_image),
    }


def workload(kind: str, name: str, image: str, init_image: str | None = None) -> dict[str, Any]:
    """A minimal valid object of ``kind`` whose pod template runs ``image``. CronJob is
    batch/v1beta1: 1.20 has no batch/v1 CronJob."""
    if kind == "Pod":
        return pod(name, image, init_image=init_image)
    labels = {"app": name}
    template = {"metadata": {"labels": labels}, "spec": _pod_spec(image, init_image)}
    metadata = {"name": name, "namespace": NAMESPACE}
    if kind in ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"):
        spec: dict[str, Any] = {"selector": {"matchLabels": labels}, "template": template}
        if kind == "StatefulSet":
            spec["serviceName"] = name
        return {"apiVersion": "apps/v1", "kind": kind, "metadata": metadata, "spec": spec}
    template["spec"]["restartPolicy"] = "Never"
    if kind == "Job":
        return {
            "apiVersion": "batch/v1",
            "kind": kind,
            "metadata": metadata,
            "spec": {"template": template},
        }
    if kind == "CronJob":
        return {
            "apiVersion": "batch/v1beta1",
            "kind": kind,
            "metadata": metadata,
            "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": template}}},
        }
    raise ValueError(kind)


def _resource(kind: str, name: str) -> str:
    return f"{kind.lower()}/{name}"


def denial(env: Env, stderr: str) -> str:
    """The webhook's message as kubectl shows it, asserting it is Provenant's denial."""
    marker = f'admission webhook "{env.webhook_name}" denied the request: '
    assert marker in stderr, stderr
    return stderr.split(marker, 1)[1]


def decision_id(message: str) -> str:
    # "Provenant denied Pod apps/x (decision <uuid>, details at GET /v1/decisions/<uuid>)"
    match = re.search(r"/v1/decisions/([0-9a-f-]{36})", message)
    assert match, f"no decision link in {message!r}"
    return match.group(1)


def decision(env: Env, message: str) -> dict[str, Any]:
    with env.server.client() as client:
        response = client.get(f"/v1/decisions/{decision_id(message)}", headers=env.read)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def recorded_outcomes(env: Env, name: str) -> list[tuple[str, str]]:
    """(operation, outcome) of every decision recorded for objects called ``name``, oldest
    first: allowed answers carry no decision id that kubectl would show."""
    db = Database(env.db_url, pool_size=1)
    try:
        with db.session() as session:
            rows = session.execute(
                select(Decision.operation, Decision.outcome)
                .where(Decision.name == name)
                .order_by(Decision.created_at)
            )
            return [(operation, outcome) for operation, outcome in rows]
    finally:
        db.dispose()


# --- tests -----------------------------------------------------------------------------------


KINDS = ["Pod", "Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob"]


@pytest.mark.parametrize("kind", KINDS)
def test_attested_workload_is_admitted_and_unattested_one_denied(env: Env, kind: str) -> None:
    name = f"{kind.lower()}-ok"
    env.kubectl.create(workload(kind, name, SIGNED))
    assert env.kubectl("get", "-n", NAMESPACE, _resource(kind, name), "-o", "name").stdout.strip()

    # The unattested image hides in initContainers (in the CronJob, two templates down): the
    # pod template is found in every kind, and every container list in it is checked.
    denied_name = f"{kind.lower()}-denied"
    result = env.kubectl.create(workload(kind, denied_name, SIGNED, UNSIGNED), check=False)
    assert result.returncode != 0
    message = denial(env, result.stderr)
    assert f"Provenant denied {kind} {NAMESPACE}/{denied_name}" in message
    assert UNSIGNED in message
    assert "initContainers" in message
    assert SIGNED not in message, "only the failing image is named"
    missing = env.kubectl("get", "-n", NAMESPACE, _resource(kind, denied_name), check=False)
    assert "NotFound" in missing.stderr


def test_denial_explains_and_links_the_recorded_decision(env: Env) -> None:
    result = env.kubectl.create(pod("unattested", UNSIGNED), check=False)
    message = denial(env, result.stderr)
    assert f"Provenant denied Pod {NAMESPACE}/unattested" in message
    assert UNSIGNED in message
    assert "no attestation" in message  # told apart from "present but failing"
    recorded = decision(env, message)
    assert recorded["allowed"] is False
    assert recorded["outcome"] == "denied"
    assert (recorded["namespace"], recorded["name"]) == (NAMESPACE, "unattested")
    assert recorded["kind"].endswith("Pod")
    assert recorded["operation"] == "CREATE"
    assert recorded["dry_run"] is False
    # Who asked Kubernetes, and who asked Provenant: the apiserver, with the admission token
    # that reached it through the admission configuration's kubeconfig.
    assert recorded["user"] == ADMIN_USER
    assert recorded["caller"] == "kube-apiserver"


def test_tag_only_image_is_denied_with_how_to_pin_it(env: Env) -> None:
    result = env.kubectl.create(pod("tagged", TAG_ONLY), check=False)
    message = denial(env, result.stderr)
    assert TAG_ONLY in message
    assert f"{REPOSITORY}@sha256:" in message


def test_server_side_dry_run_is_answered_and_persists_nothing(env: Env) -> None:
    denied = env.kubectl.create(pod("dry-denied", UNSIGNED), dry_run=True, check=False)
    recorded = decision(env, denial(env, denied.stderr))
    assert recorded["dry_run"] is True
    assert recorded["outcome"] == "denied"

    allowed = env.kubectl.create(pod("dry-allowed", SIGNED), dry_run=True)
    assert "server dry run" in allowed.stdout
    for name in ("dry-denied", "dry-allowed"):
        gone = env.kubectl("get", "-n", NAMESPACE, f"pod/{name}", check=False)
        assert "NotFound" in gone.stderr


def test_set_image_update_is_reviewed(env: Env) -> None:
    env.kubectl.create(workload("Deployment", "web", SIGNED))
    # One `kubectl set image` can send two UPDATE reviews; only the outcome is asserted, not
    # how many reviews produced it.
    denied = env.kubectl(
        "set", "image", "deployment/web", f"app={UNSIGNED}", "-n", NAMESPACE, check=False
    )
    message = denial(env, denied.stderr)
    assert f"Provenant denied Deployment {NAMESPACE}/web" in message
    assert UNSIGNED in message
    image = "{.spec.template.spec.containers[0].image}"
    current = env.kubectl("get", "-n", NAMESPACE, "deployment/web", "-o", f"jsonpath={image}")
    assert current.stdout == SIGNED

    env.kubectl("set", "image", "deployment/web", f"app={SIGNED_NEXT}", "-n", NAMESPACE)
    current = env.kubectl("get", "-n", NAMESPACE, "deployment/web", "-o", f"jsonpath={image}")
    assert current.stdout == SIGNED_NEXT
    outcomes = recorded_outcomes(env, "web")
    assert outcomes[0] == ("CREATE", "allowed")
    assert ("UPDATE", "denied") in outcomes
    assert outcomes[-1] == ("UPDATE", "allowed")


def test_excluded_namespace_is_admitted_without_evaluation(env: Env) -> None:
    # On 1.20 namespaces carry no kubernetes.io/metadata.name label yet (1.21 adds it), so the
    # webhook's namespaceSelector does not exclude kube-system here: the review reaches
    # Provenant, and its excludedNamespaces lets the tag-only image through.
    env.kubectl.create(pod("system-tagged", TAG_ONLY, namespace="kube-system"))
    assert recorded_outcomes(env, "system-tagged") == [("CREATE", "excluded")]


def test_break_glass_admits_with_a_warning(env: Env) -> None:
    justification = "INC-1234: hotfix while CI is down"
    created = env.kubectl.create(
        pod("glass", UNSIGNED, annotations={"provenant.dev/break-glass": justification})
    )
    assert "pod/glass created" in created.stdout
    warning = [line for line in created.stderr.splitlines() if line.startswith("Warning:")]
    assert warning, created.stderr
    assert "break-glass" in warning[0]
    assert justification in warning[0]
    assert recorded_outcomes(env, "glass") == [("CREATE", "break-glass")]
