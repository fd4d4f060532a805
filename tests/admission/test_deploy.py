"""deploy/: the kustomization renders, kubectl accepts every object, the webhook configuration
and the Deployment say what the admission issue asks, and the install overlay of
docs/kubernetes.md works with the files `provenant webhook certs` writes.

`kubectl create --dry-run=client -f` needs API discovery to map kinds to resources even though
it sends nothing: a loopback stand-in answers discovery for the kinds deploy/ uses (an unknown
kind or apiVersion is still refused). Schema validation needs the server's OpenAPI document,
which no offline kubectl has, hence ``--validate=false``; the tests below check the fields
that matter one by one.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from typer.testing import CliRunner

from app.admission.cli import webhook_cli
from app.policy.store import load_policy_set
from tests.server import REPO

DEPLOY = REPO / "deploy"
DOCS = REPO / "docs" / "kubernetes.md"
KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
NAMESPACE = "provenant"

# What a 1.21+ apiserver serves for the kinds deploy/ (and the install overlay) use.
DISCOVERY: dict[tuple[str, str], list[tuple[str, str, bool]]] = {
    ("", "v1"): [
        ("namespaces", "Namespace", False),
        ("serviceaccounts", "ServiceAccount", True),
        ("services", "Service", True),
        ("configmaps", "ConfigMap", True),
        ("secrets", "Secret", True),
        ("pods", "Pod", True),
    ],
    ("apps", "v1"): [("deployments", "Deployment", True)],
    ("batch", "v1"): [("jobs", "Job", True)],
    ("policy", "v1"): [("poddisruptionbudgets", "PodDisruptionBudget", True)],
    ("admissionregistration.k8s.io", "v1"): [
        ("validatingwebhookconfigurations", "ValidatingWebhookConfiguration", False)
    ],
}


def _discovery(path: str) -> dict[str, Any] | None:
    def resources(group: str, version: str) -> dict[str, Any]:
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": [
                {
                    "name": name,
                    "singularName": "",
                    "namespaced": namespaced,
                    "kind": kind,
                    "verbs": ["create", "delete", "get", "list", "patch", "update"],
                }
                for name, kind, namespaced in DISCOVERY[(group, version)]
            ],
        }

    if path == "/api":
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
    if path == "/api/v1":
        return resources("", "v1")
    if path == "/apis":
        groups = [
            {
                "name": group,
                "versions": [{"groupVersion": f"{group}/{version}", "version": version}],
                "preferredVersion": {"groupVersion": f"{group}/{version}", "version": version},
            }
            for group, version in DISCOVERY
            if group
        ]
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
    parts = path.split("/")
    if len(parts) == 4 and parts[1] == "apis" and (parts[2], parts[3]) in DISCOVERY:
        return resources(parts[2], parts[3])
    return None


class _Discovery(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = _discovery(self.path.split("?", 1)[0])
        if body is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def discovery_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Discovery)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def kubectl(*args: str, stdin: str | None = None, cwd: Path | None = None) -> str:
    assert KUBECTL is not None
    env = {**os.environ, "KUBECONFIG": os.devnull}
    done = subprocess.run(
        [KUBECTL, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=env,
        check=False,
    )
    assert done.returncode == 0, f"kubectl {' '.join(args)} failed:\n{done.stderr}"
    return done.stdout


def render(directory: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(kubectl("kustomize", str(directory))) if d]


def dry_run(manifests: str, server: str, cache: Path) -> list[dict[str, Any]]:
    out = kubectl(
        "create",
        "--dry-run=client",
        "--validate=false",
        "-f",
        "-",
        "-o",
        "yaml",
        f"--server={server}",
        f"--cache-dir={cache}",
        stdin=manifests,
    )
    return [d for d in yaml.safe_load_all(out) if d]


def by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for obj in objects:
        assert obj["kind"] not in found or obj["kind"] in ("ConfigMap", "Secret"), obj["kind"]
        found.setdefault(obj["kind"], obj)
    return found


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    if KUBECTL is None:
        pytest.skip("kubectl is not installed")
    return render(DEPLOY)


@needs_kubectl
def test_kustomization_renders_every_object(rendered: list[dict[str, Any]]) -> None:
    kinds = sorted(o["kind"] for o in rendered)
    assert kinds == sorted(
        [
            "Namespace",
            "ServiceAccount",
            "ConfigMap",
            "Deployment",
            "Service",
            "PodDisruptionBudget",
            "ValidatingWebhookConfiguration",
        ]
    )
    for obj in rendered:
        if obj["kind"] not in ("Namespace", "ValidatingWebhookConfiguration"):
            assert obj["metadata"]["namespace"] == NAMESPACE, obj["kind"]
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "provenant"
    # The example Secret is documentation, not part of what gets applied.
    assert not any(o["kind"] == "Secret" for o in rendered)


@needs_kubectl
def test_kubectl_accepts_every_object(
    rendered: list[dict[str, Any]], discovery_server: str, tmp_path: Path
) -> None:
    manifests = kubectl("kustomize", str(DEPLOY))
    created = dry_run(manifests, discovery_server, tmp_path / "cache")
    assert [(o["kind"], o["metadata"]["name"]) for o in created] == [
        (o["kind"], o["metadata"]["name"]) for o in rendered
    ]
    example = (DEPLOY / "secret.example.yaml").read_text()
    (secret,) = dry_run(example, discovery_server, tmp_path / "cache")
    assert secret["metadata"] == {"name": "provenant-db", "namespace": NAMESPACE}
    assert secret["stringData"]["database-url"].startswith("postgresql+psycopg://")
    # The stand-in refuses what a real apiserver would not know: the check has teeth.
    bogus = "apiVersion: apps/v1\nkind: Deploymnet\nmetadata: {name: x}\n"
    with pytest.raises(AssertionError, match="no matches for kind"):
        dry_run(bogus, discovery_server, tmp_path / "cache")


@needs_kubectl
def test_webhook_configuration(rendered: list[dict[str, Any]]) -> None:
    config = by_kind(rendered)["ValidatingWebhookConfiguration"]
    assert config["apiVersion"] == "admissionregistration.k8s.io/v1"
    (webhook,) = config["webhooks"]
    assert webhook["failurePolicy"] == "Fail"
    assert webhook["timeoutSeconds"] == 5
    assert webhook["sideEffects"] == "NoneOnDryRun"
    assert webhook["admissionReviewVersions"] == ["v1"]
    assert webhook["clientConfig"]["service"] == {
        "name": "provenant",
        "namespace": NAMESPACE,
        "path": "/k8s/validate",
        "port": 443,
    }
    assert "caBundle" not in webhook["clientConfig"]  # added at install, never a placeholder
    assert webhook["namespaceSelector"] == {
        "matchExpressions": [
            {
                "key": "kubernetes.io/metadata.name",
                "operator": "NotIn",
                "values": ["kube-system", NAMESPACE],
            }
        ]
    }
    covered: dict[str, set[str]] = {}
    for rule in webhook["rules"]:
        assert sorted(rule["operations"]) == ["CREATE", "UPDATE"]
        assert rule["apiVersions"] == ["*"]  # e.g. batch/v1beta1 CronJobs before 1.21
        assert rule.get("scope", "*") in ("Namespaced", "*")
        for group in rule["apiGroups"]:
            covered.setdefault(group, set()).update(rule["resources"])
    assert covered == {
        "": {"pods", "pods/ephemeralcontainers", "replicationcontrollers", "podtemplates"},
        "apps": {"deployments", "replicasets", "statefulsets", "daemonsets"},
        "batch": {"jobs", "cronjobs"},
    }
    # The e2e test against a real apiserver reads this very file.
    raw = yaml.safe_load((DEPLOY / "validating-webhook.yaml").read_text())
    assert raw["webhooks"] == config["webhooks"]


@needs_kubectl
def test_own_namespace_is_excluded_everywhere(rendered: list[dict[str, Any]]) -> None:
    objects = by_kind(rendered)
    labels = objects["Namespace"]["metadata"]["labels"]
    assert labels["kubernetes.io/metadata.name"] == NAMESPACE
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    (configmap,) = [o for o in rendered if o["kind"] == "ConfigMap"]
    policy_config = yaml.safe_load(configmap["data"]["config.yaml"])
    assert {"kube-system", NAMESPACE} <= set(policy_config["spec"]["excludedNamespaces"])


@needs_kubectl
def test_deployment_security_and_probes(rendered: list[dict[str, Any]]) -> None:
    objects = by_kind(rendered)
    deployment = objects["Deployment"]
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = spec["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    pod_security = pod["securityContext"]
    assert pod_security["runAsNonRoot"] is True and pod_security["runAsUser"] != 0
    assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}
    volumes = {v["name"]: v for v in pod["volumes"]}
    for container in pod["initContainers"] + pod["containers"]:
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True, container["name"]
        assert security["allowPrivilegeEscalation"] is False, container["name"]
        assert security["runAsNonRoot"] is True, container["name"]
        assert security["capabilities"] == {"drop": ["ALL"]}, container["name"]
        resources = container["resources"]
        assert set(resources["requests"]) == {"cpu", "memory"}, container["name"]
        assert set(resources["limits"]) == {"cpu", "memory"}, container["name"]
        for mount in container.get("volumeMounts", []):
            assert mount["name"] in volumes
    (server,) = pod["containers"]
    env = {e["name"]: e for e in server["env"]}
    assert env["PROVENANT_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "provenant-db",
        "key": "database-url",
    }
    mounts = {m["mountPath"]: m for m in server["volumeMounts"]}
    # Writable places on a read-only root: emptyDirs for /tmp and the var directory.
    assert volumes[mounts["/tmp"]["name"]].get("emptyDir") is not None
    assert volumes[mounts["/srv/provenant/var"]["name"]].get("emptyDir") is not None
    # The audit checkpoint key and the TLS pair come from Secrets, read-only.
    key_file = Path(env["PROVENANT_AUDIT_KEY_FILE"]["value"])
    key_mount = mounts[str(key_file.parent)]
    assert key_mount["readOnly"] is True
    assert volumes[key_mount["name"]]["secret"]["secretName"] == "provenant-audit-key"
    assert volumes[key_mount["name"]]["secret"]["items"] == [
        {"key": key_file.name, "path": key_file.name}
    ]
    args = server["args"]
    tls_dir = mounts["/etc/provenant/tls"]
    assert volumes[tls_dir["name"]]["secret"]["secretName"] == "provenant-tls"
    assert "--tls-cert=/etc/provenant/tls/tls.crt" in args
    assert "--tls-key=/etc/provenant/tls/tls.key" in args
    assert "--port=8443" in args
    # Policies: from the generated ConfigMap, through the init container, read-only.
    policy_dir = env["PROVENANT_POLICY_DIR"]["value"]
    assert mounts[policy_dir]["readOnly"] is True
    (configmap,) = [o for o in rendered if o["kind"] == "ConfigMap"]
    assert volumes["policy-files"]["configMap"]["name"] == configmap["metadata"]["name"]
    assert configmap["metadata"]["name"].startswith("provenant-policies-")
    # Probes over HTTPS on the serving port.
    (port,) = server["ports"]
    assert port["containerPort"] == 8443
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        get = server[probe]["httpGet"]
        assert (get["path"], get["scheme"], get["port"]) == (path, "HTTPS", port["name"])
    # The Service maps 443 to that port; the PodDisruptionBudget keeps one replica.
    (service_port,) = objects["Service"]["spec"]["ports"]
    assert (service_port["port"], service_port["targetPort"]) == (443, port["name"])
    selector = spec["selector"]["matchLabels"]
    assert objects["Service"]["spec"]["selector"] == selector
    assert objects["PodDisruptionBudget"]["spec"] == {
        "minAvailable": 1,
        "selector": {"matchLabels": selector},
    }
    assert selector.items() <= spec["template"]["metadata"]["labels"].items()


def docs_overlay() -> str:
    text = DOCS.read_text()
    match = re.search(r"<!-- install-overlay[^>]*-->\s*```yaml\n(.*?)```", text, re.DOTALL)
    assert match, "docs/kubernetes.md lost its install overlay"
    return match.group(1)


@pytest.fixture
def installed(tmp_path: Path) -> tuple[Path, str]:
    """The install overlay from the docs, laid out as they describe, with real certificates."""
    shutil.copytree(DEPLOY, tmp_path / "deploy", ignore=shutil.ignore_patterns("e2e"))
    overlay = tmp_path / "clusters" / "prod"
    (overlay / "policies" / "keys").mkdir(parents=True)
    (overlay / "kustomization.yaml").write_text(docs_overlay())
    result = CliRunner().invoke(
        webhook_cli,
        [
            "certs",
            "--service",
            "provenant",
            "--namespace",
            NAMESPACE,
            "--out",
            str(overlay / "certs"),
        ],
    )
    assert result.exit_code == 0, result.stderr
    key = ed25519.Ed25519PrivateKey.generate()
    (overlay / "audit-key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    shutil.copy(DEPLOY / "policies" / "config.yaml", overlay / "policies" / "config.yaml")
    shutil.copy(REPO / "policies" / "release-key.yaml", overlay / "policies" / "acme-release.yaml")
    shutil.copy(REPO / "policies" / "keys" / "release.pub", overlay / "policies" / "keys")
    return overlay, result.stdout


@needs_kubectl
def test_install_overlay_from_the_docs(
    installed: tuple[Path, str], discovery_server: str, tmp_path: Path
) -> None:
    overlay, bundle = installed
    objects = render(overlay)
    secrets = {o["metadata"]["name"].rsplit("-", 1)[0]: o for o in objects if o["kind"] == "Secret"}
    assert set(secrets) == {"provenant-tls", "provenant-audit-key"}
    tls = secrets["provenant-tls"]
    assert tls["type"] == "kubernetes.io/tls"
    assert base64.b64decode(tls["data"]["tls.key"]) == (overlay / "certs" / "tls.key").read_bytes()
    # caBundle: what `provenant webhook certs` printed (kustomize wraps base64 lines; the
    # apiserver's decoder skips newlines).
    (webhook,) = by_kind(objects)["ValidatingWebhookConfiguration"]["webhooks"]
    assert "".join(webhook["clientConfig"]["caBundle"].split()) == bundle.strip()
    # The Deployment follows the hashed names and the pinned image.
    pod = by_kind(objects)["Deployment"]["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == tls["metadata"]["name"]
    assert (
        volumes["audit-key"]["secret"]["secretName"]
        == secrets["provenant-audit-key"]["metadata"]["name"]
    )
    configmaps = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ConfigMap"}
    assert volumes["policy-files"]["configMap"]["name"] in configmaps
    assert volumes["policy-keys"]["configMap"]["name"] in configmaps
    assert {c["image"] for c in pod["containers"] + pod["initContainers"]} == {
        "REGISTRY/provenant@sha256:" + "0" * 64
    }
    created = dry_run(kubectl("kustomize", str(overlay)), discovery_server, tmp_path / "cache")
    assert len(created) == len(objects)


@needs_kubectl
def test_policies_init_container_assembles_a_loadable_policy_dir(
    installed: tuple[Path, str], tmp_path: Path
) -> None:
    """Run the init container's script against ConfigMap volumes laid out as the kubelet does
    (timestamped "..data" folders, symlinked keys); the result loads, and two "Pods" with
    differently timestamped volumes get the same policy-set hash."""
    overlay, _ = installed
    objects = render(overlay)
    pod = by_kind(objects)["Deployment"]["spec"]["template"]["spec"]
    (init,) = [c for c in pod["initContainers"] if c["name"] == "policies"]
    script = init["command"][-1]
    mounts = {m["name"]: m["mountPath"] for m in init["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    configmaps = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ConfigMap"}

    def assemble(root: Path, stamp: str) -> Path:
        paths = {}
        for name, path in mounts.items():
            target = root / path.lstrip("/")
            paths[path] = target
            source = volumes[name].get("configMap")
            target.mkdir(parents=True)
            if source is None or source["name"] not in configmaps:
                continue  # an emptyDir, or an optional ConfigMap that does not exist
            data_dir = target / f"..{stamp}"
            data_dir.mkdir()
            for key, value in configmaps[source["name"]]["data"].items():
                (data_dir / key).write_text(value)
                (target / key).symlink_to(Path("..data") / key)
            (target / "..data").symlink_to(data_dir.name)
        # The container's absolute paths, moved under ``root`` in one pass.
        pattern = "|".join(re.escape(p) for p in sorted(paths, key=len, reverse=True))
        local = re.sub(
            rf"(?<![\w/.-])({pattern})(?![\w.-])", lambda m: str(paths[m.group(1)]), script
        )
        done = subprocess.run(["sh", "-ec", local], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        return paths[mounts["policies"]]

    first = assemble(tmp_path / "pod-a", "2026_01_01_00_00_00.1")
    second = assemble(tmp_path / "pod-b", "2026_02_02_12_00_00.2")
    assert sorted(p.relative_to(first).as_posix() for p in first.rglob("*") if p.is_file()) == [
        "acme-release.yaml",
        "config.yaml",
        "keys/release.pub",
    ]
    loaded = load_policy_set(first)
    assert [p.name for p in loaded.policies] == ["acme-signed-release", "acme-release-scanned"]
    assert load_policy_set(second).content_hash == loaded.content_hash
