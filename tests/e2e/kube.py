"""A throwaway Kubernetes control plane for end-to-end admission tests: etcd, kube-apiserver and
kubectl on loopback, with nothing else (no kubelet, no controllers, no scheduler).

kube-apiserver comes from ``deploy/e2e/build-kube-apiserver.sh`` (built once into a cache outside
the checkout); etcd from Debian's ``etcd-server``. Objects are stored and admitted but never run,
which is all an admission webhook can observe anyway.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.server import REPO, free_port, write_tls_pair

KUBE_VERSION = "1.20.2"
DEFAULT_CACHE = Path("/var/cache/provenant-e2e")
BUILD_SCRIPT = REPO / "deploy" / "e2e" / "build-kube-apiserver.sh"
ADMIN_USER = "e2e-admin"
T = TypeVar("T")


def cache_root() -> Path:
    return Path(os.environ.get("PROVENANT_KUBE_CACHE") or DEFAULT_CACHE)


def _cached(name: str) -> Path:
    return cache_root() / f"kube-apiserver-{KUBE_VERSION}" / name


def apiserver_path() -> Path:
    """Where the build script puts the binary; ``PROVENANT_KUBE_APISERVER`` overrides it."""
    explicit = os.environ.get("PROVENANT_KUBE_APISERVER")
    return Path(explicit) if explicit else _cached("kube-apiserver")


def kubectl_path() -> str | None:
    """kubectl of the apiserver's own version, which the build script puts beside it, before
    whatever is on PATH: that may be far outside the supported skew of one minor version (here
    it is gcloud's dispatcher, whose built-in client is 1.32)."""
    explicit = os.environ.get("PROVENANT_KUBECTL")
    if explicit:
        return explicit
    cached = _cached("kubectl")
    return str(cached) if os.access(cached, os.X_OK) else shutil.which("kubectl")


def missing_tools() -> str | None:
    """Why the control plane cannot start here, or None when everything is in place."""
    problems = []
    apiserver = apiserver_path()
    if not os.access(apiserver, os.X_OK):
        problems.append(f"kube-apiserver not found at {apiserver} (run {BUILD_SCRIPT})")
    if not shutil.which("etcd"):
        problems.append("etcd not on PATH (apt-get install etcd-server, or run the build script)")
    if not kubectl_path():
        problems.append("kubectl not on PATH")
    return "; ".join(problems) or None


def _stop(process: subprocess.Popen[bytes] | None, timeout: float = 15) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class Etcd:
    """A single-member etcd with its own data dir; both ports on loopback, chosen free."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir / "etcd"
        self.client_port = free_port()
        self.peer_port = free_port()
        self.url = f"http://127.0.0.1:{self.client_port}"
        self.log_path = workdir / "etcd.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> Etcd:
        peer = f"http://127.0.0.1:{self.peer_port}"
        args = [
            shutil.which("etcd") or "etcd",
            "--name=e2e",
            f"--data-dir={self.dir}",
            f"--listen-client-urls={self.url}",
            f"--advertise-client-urls={self.url}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=e2e={peer}",
            "--initial-cluster-state=new",
            "--log-level=warn",
            "--logger=zap",
        ]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"etcd exited early:\n{_tail(self.log_path)}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if json.load(response).get("health") == "true":
                        return self
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"etcd not healthy in {timeout}s:\n{_tail(self.log_path)}")

    def stop(self) -> None:
        _stop(self.process)


class KubeAPIServer:
    """kube-apiserver on a loopback port with its own serving certificate.

    kubectl authenticates with a static token (a ``system:masters`` user; authorization is
    AlwaysAllow anyway). ``webhook_tokens`` maps a webhook's ``host:port`` to the bearer token the
    apiserver presents when calling it: ValidatingWebhookConfiguration cannot carry credentials,
    so they travel in a kubeconfig named by the admission configuration file, read once at start.
    """

    def __init__(
        self, workdir: Path, etcd_url: str, webhook_tokens: Mapping[str, str] | None = None
    ) -> None:
        self.dir = workdir / "apiserver"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.etcd_url = etcd_url
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.admin_token = secrets.token_hex(24)
        self.webhook_tokens = dict(webhook_tokens or {})
        self.log_path = workdir / "kube-apiserver.log"
        self.kubeconfig = self.dir / "kubeconfig"
        self.process: subprocess.Popen[bytes] | None = None
        self.cert, self.key = write_tls_pair(self.dir)

    def _write_files(self) -> list[str]:
        tokens = self.dir / "tokens.csv"
        tokens.write_text(f'{self.admin_token},{ADMIN_USER},{ADMIN_USER},"system:masters"\n')
        # 1.20 refuses to start without a service-account issuer and signing key, even though
        # nothing here ever mints a service-account token.
        sa_key = self.dir / "sa.key"
        sa_key.write_bytes(
            rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
        webhook_kubeconfig = self.dir / "webhook-kubeconfig.yaml"
        webhook_kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    # Matched by exact host:port first, so the token only goes to that webhook.
                    "users": [
                        {"name": target, "user": {"token": token}}
                        for target, token in self.webhook_tokens.items()
                    ],
                }
            )
        )
        admission = self.dir / "admission.yaml"
        webhook_plugin = {
            "apiVersion": "apiserver.config.k8s.io/v1",
            "kind": "WebhookAdmissionConfiguration",
            "kubeConfigFile": str(webhook_kubeconfig),
        }
        admission.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "apiserver.config.k8s.io/v1",
                    "kind": "AdmissionConfiguration",
                    "plugins": [
                        {"name": "ValidatingAdmissionWebhook", "configuration": webhook_plugin},
                    ],
                }
            )
        )
        self.kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {
                            "name": "e2e",
                            "cluster": {
                                "server": self.url,
                                "certificate-authority": str(self.cert),
                            },
                        }
                    ],
                    "users": [{"name": ADMIN_USER, "user": {"token": self.admin_token}}],
                    "contexts": [
                        {"name": "e2e", "context": {"cluster": "e2e", "user": ADMIN_USER}}
                    ],
                    "current-context": "e2e",
                }
            )
        )
        return [
            str(apiserver_path()),
            f"--etcd-servers={self.etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.port}",
            # 1.20 still opens an unauthenticated HTTP port on localhost:8080 by default, which
            # collides between parallel test workers (and with anything else on 8080).
            "--insecure-port=0",
            f"--tls-cert-file={self.cert}",
            f"--tls-private-key-file={self.key}",
            f"--cert-dir={self.dir}",
            f"--token-auth-file={tokens}",
            "--authorization-mode=AlwaysAllow",
            "--anonymous-auth=false",
            f"--service-account-key-file={sa_key}",
            f"--service-account-signing-key-file={sa_key}",
            "--service-account-issuer=https://kubernetes.default.svc",
            "--service-cluster-ip-range=10.96.0.0/24",
            # No controller-manager runs, so nothing would ever create the default
            # ServiceAccount that this plugin insists every Pod's namespace has.
            "--disable-admission-plugins=ServiceAccount",
            f"--admission-control-config-file={admission}",
            # No peers to reconcile with; spares a write loop against etcd.
            "--endpoint-reconciler-type=none",
            "--enable-priority-and-fairness=false",
            "--profiling=false",
            "--v=1",
        ]

    def start(self) -> KubeAPIServer:
        args = self._write_files()
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        return self

    def wait_ready(self, timeout: float = 60) -> KubeAPIServer:
        """Polls /readyz: ready once etcd is reachable and the bootstrap hooks (default
        namespaces, priority classes) are done, 6 to 8 s after start on 2 cores."""
        assert self.process is not None, "start() first"
        context = ssl.create_default_context(cafile=str(self.cert))
        request = urllib.request.Request(
            f"{self.url}/readyz", headers={"Authorization": f"Bearer {self.admin_token}"}
        )
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"kube-apiserver exited early:\n{_tail(self.log_path)}")
            try:
                with urllib.request.urlopen(request, timeout=5, context=context) as response:
                    if response.status == 200:
                        return self
            except urllib.error.HTTPError as exc:
                last = exc.read().decode(errors="replace")[-500:]
            except OSError as exc:
                last = str(exc)
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(
            f"kube-apiserver not ready in {timeout}s ({last}):\n{_tail(self.log_path)}"
        )

    def stop(self) -> None:
        _stop(self.process)


class Kubectl:
    """Runs kubectl against one cluster, with its own kubeconfig and discovery cache so nothing
    in the user's ~/.kube is read or written."""

    def __init__(self, kubeconfig: Path, workdir: Path) -> None:
        self.kubeconfig = kubeconfig
        self.home = workdir / "kubectl-home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.binary = kubectl_path() or "kubectl"

    def __call__(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "HOME": str(self.home),
        }
        result = subprocess.run(
            [self.binary, f"--cache-dir={self.home / 'cache'}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout}{result.stderr}"
            )
        return result

    def apply(
        self, *documents: Mapping[str, Any], check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self("apply", "-f", "-", stdin=to_yaml(*documents), check=check)

    def create(
        self, *documents: Mapping[str, Any], dry_run: bool = False, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        args = ["create", "-f", "-"] + (["--dry-run=server"] if dry_run else [])
        return self(*args, stdin=to_yaml(*documents), check=check)


def to_yaml(*documents: Mapping[str, Any]) -> str:
    return yaml.safe_dump_all([dict(d) for d in documents], sort_keys=False)


class KubeCluster:
    """etcd + kube-apiserver + a kubectl bound to them. Stops the apiserver before etcd: the other
    way round, the apiserver spends its shutdown retrying etcd."""

    def __init__(self, workdir: Path, webhook_tokens: Mapping[str, str] | None = None) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.etcd = Etcd(workdir)
        self.apiserver: KubeAPIServer | None = None
        self.webhook_tokens = webhook_tokens
        self.kubectl: Kubectl | None = None

    def start(self) -> KubeCluster:
        self.etcd.start()
        self.apiserver = KubeAPIServer(self.workdir, self.etcd.url, self.webhook_tokens).start()
        self.kubectl = Kubectl(self.apiserver.kubeconfig, self.workdir)
        return self

    def wait_ready(self) -> KubeCluster:
        assert self.apiserver is not None
        self.apiserver.wait_ready()
        return self

    def stop(self) -> None:
        if self.apiserver:
            self.apiserver.stop()
        self.etcd.stop()

    def logs(self) -> str:
        parts = [f"--- etcd ---\n{_tail(self.etcd.log_path)}"]
        if self.apiserver:
            parts.append(f"--- kube-apiserver ---\n{_tail(self.apiserver.log_path, 80)}")
        return "\n".join(parts)

    def __enter__(self) -> KubeCluster:
        try:
            return self.start().wait_ready()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- the webhook configuration ------------------------------------------------------------------

WEBHOOK_CONFIGURATION = REPO / "deploy" / "validating-webhook.yaml"


def load_webhook_configuration(path: Path = WEBHOOK_CONFIGURATION) -> dict[str, Any]:
    """The ValidatingWebhookConfiguration as shipped in deploy/, so the rules, selectors and
    failure policy under test are the ones users install."""
    for document in yaml.safe_load_all(path.read_text()):
        if isinstance(document, dict) and document.get("kind") == "ValidatingWebhookConfiguration":
            return document
    raise AssertionError(f"no ValidatingWebhookConfiguration in {path}")


def render_webhook_configuration(
    configuration: Mapping[str, Any], base_url: str, ca_pem: bytes
) -> dict[str, Any]:
    """The deploy/ configuration pointed at a loopback server: in-cluster it calls a Service,
    here there is no Service network, so ``clientConfig`` becomes ``url`` (``base_url`` plus the
    Service's path, so a wrong path in deploy/ fails here too) and ``caBundle``. Everything else
    (rules, selectors, failure policy, timeouts, side effects) is kept as shipped."""
    rendered = copy.deepcopy(dict(configuration))
    ca_bundle = base64.b64encode(ca_pem).decode()
    for webhook in rendered.get("webhooks", []):
        service = webhook.get("clientConfig", {}).get("service") or {}
        url = base_url.rstrip("/") + service.get("path", "/")
        webhook["clientConfig"] = {"url": url, "caBundle": ca_bundle}
    return rendered


def wait_until(
    predicate: Callable[[], T], *, timeout: float = 30, interval: float = 0.25, what: str
) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
