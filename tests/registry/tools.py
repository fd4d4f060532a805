"""Real registry parts for the tests: CNCF distribution (Debian's docker-registry), skopeo, and
@sigstore/oci run with node. deploy/e2e/install-registry-tools.sh installs them (.ci/run calls
it); without them the tests that need them are skipped with the reason (failed under CI).
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
TOOLS_CACHE = Path(
    os.environ.get("PROVENANT_REGISTRY_TOOLS_CACHE", "/var/cache/provenant-e2e/registry-tools")
)
# The test registries listen on loopback, which PROVENANT_REGISTRY_ALLOWED refuses unless listed.
LOCAL_REGISTRIES = "127.0.0.1,localhost"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
BUNDLE_V03 = "application/vnd.dev.sigstore.bundle.v0.3+json"


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (deploy/e2e/install-registry-tools.sh installs it)"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# -- the token issuer (Docker registry token spec) --------------------------------------------


class TokenIssuer:
    """A token server per https://distribution.github.io/distribution/spec/auth/token/ and
    .../spec/auth/jwt/: ES256 JWTs with the signing certificate in ``x5c``, which the registry
    checks against its ``rootcertbundle``. ``user``/``password`` get pull and push; anonymous
    callers get a token granting nothing (so the registry answers 401 again)."""

    service = "provenant-test-registry"
    issuer = "provenant-test-issuer"

    def __init__(self, directory: Path, user: str = "ci", password: str = "s3cret") -> None:
        self.user, self.password = user, password
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "token-issuer")])
        now = datetime.now(UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.bundle = directory / "token-root.pem"
        self.bundle.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self.port = free_port()
        self.realm = f"http://127.0.0.1:{self.port}/token"
        self.requests = 0
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                issuer.requests += 1
                query = parse_qs(urlparse(self.path).query)
                granted = issuer.authorized(self.headers.get("Authorization"))
                if granted is None:
                    self.send_response(401)
                    self.end_headers()
                    return
                token = issuer.token(query.get("scope", []), granted)
                body = json.dumps({"token": token, "expires_in": 300}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def authorized(self, header: str | None) -> bool | None:
        """True: the user; False: anonymous; None: wrong credentials."""
        if not header:
            return False
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        user, _, password = base64.b64decode(value).decode().partition(":")
        return True if (user, password) == (self.user, self.password) else None

    def token(self, scopes: list[str], user: bool) -> str:
        access = []
        for scope in scopes:
            for part in scope.split(" "):
                kind, _, rest = part.partition(":")
                name, _, _actions = rest.rpartition(":")
                if kind == "repository" and user:
                    access.append({"type": kind, "name": name, "actions": ["pull", "push"]})
        now = int(time.time())
        header = {
            "typ": "JWT",
            "alg": "ES256",
            "x5c": [b64(self.cert.public_bytes(serialization.Encoding.DER))],
        }
        claims = {
            "iss": self.issuer,
            "sub": self.user if user else "",
            "aud": self.service,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": os.urandom(8).hex(),
            "access": access,
        }
        signing_input = f"{_b64url(json.dumps(header))}.{_b64url(json.dumps(claims))}"
        der = self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return f"{signing_input}.{_b64url(signature)}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _b64url(data: str | bytes) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# -- the registry ----------------------------------------------------------------------------


@dataclass
class LocalRegistry:
    """docker-registry (CNCF distribution 2.8) on 127.0.0.1, started for a test."""

    directory: Path
    auth: str | None = None  # None | "htpasswd" | "token"
    user: str = "ci"
    password: str = "s3cret"
    port: int = field(default_factory=free_port)
    issuer: TokenIssuer | None = None
    process: subprocess.Popen[bytes] | None = None
    _http: httpx.Client | None = None
    tls: tuple[Path, Path] | None = None  # certificate and key: serve HTTPS

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self) -> LocalRegistry:
        binary = require_tool("docker-registry")
        self.directory.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "error", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.directory / "storage")},
                "delete": {"enabled": True},
            },
            "http": {"addr": self.host, "secret": "provenant-tests"},
        }
        if self.auth == "htpasswd":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                import crypt  # bcrypt through libxcrypt: what distribution's htpasswd reads

                hashed = crypt.crypt(self.password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))
            (self.directory / "htpasswd").write_text(f"{self.user}:{hashed}\n")
            config["auth"] = {
                "htpasswd": {"realm": "provenant-test", "path": str(self.directory / "htpasswd")}
            }
        elif self.auth == "token":
            self.issuer = TokenIssuer(self.directory, self.user, self.password)
            config["auth"] = {
                "token": {
                    "realm": self.issuer.realm,
                    "service": self.issuer.service,
                    "issuer": self.issuer.issuer,
                    "rootcertbundle": str(self.issuer.bundle),
                }
            }
        if self.tls is not None:
            config["http"]["tls"] = {"certificate": str(self.tls[0]), "key": str(self.tls[1])}
        path = self.directory / "config.yml"
        path.write_text(json.dumps(config))  # YAML is a superset of JSON
        self.log = (self.directory / "registry.log").open("wb")
        self.process = subprocess.Popen(
            [binary, "serve", str(path)], stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                scheme = "https" if self.tls else "http"
                status = httpx.get(
                    f"{scheme}://{self.host}/v2/", timeout=1, verify=False
                ).status_code
                if status in (200, 401):
                    return self
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(
            f"docker-registry did not start: {(self.directory / 'registry.log').read_text()}"
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.issuer is not None:
            self.issuer.close()
        if self._http is not None:
            self._http.close()
            self._http = None

    # -- pushing (what a real client does: skopeo for images, plain HTTP for cosign's) ------

    def credentials(self) -> tuple[str, str] | None:
        return (self.user, self.password) if self.auth else None

    def docker_config(self, path: Path) -> Path:
        auth = b64(f"{self.user}:{self.password}".encode())
        path.write_text(json.dumps({"auths": {self.host: {"auth": auth}}}))
        return path

    def push_image(self, repository: str, tag: str, *, platforms: int = 0, seed: str = "") -> str:
        """Build an OCI layout (one image, or an index of ``platforms`` images) and copy it
        to the registry with skopeo; the image (or index) digest."""
        skopeo = require_tool("skopeo")
        layout = self.directory / f"layout-{repository.replace('/', '_')}-{tag}"
        digest = build_layout(layout, tag, platforms=platforms, seed=seed or f"{repository}:{tag}")
        command = [
            skopeo,
            "--insecure-policy",
            "copy",
            "--quiet",
            "--preserve-digests",
            "--dest-tls-verify=false",
        ]
        if platforms:
            command.append("--all")
        if self.auth:
            command += ["--dest-creds", f"{self.user}:{self.password}"]
        command += [f"oci:{layout}:{tag}", f"docker://{self.host}/{repository}:{tag}"]
        subprocess.run(command, check=True, capture_output=True, timeout=120)
        return digest

    @contextlib.contextmanager
    def _client(self) -> Iterator[httpx.Client]:
        # One connection for every push: a new client per blob cost more than the push.
        if self._http is None:
            self._http = httpx.Client(base_url=self.url, timeout=10)
        yield self._http

    def _auth(self, client: httpx.Client, repository: str) -> dict[str, str]:
        if self.auth == "htpasswd":
            return {"Authorization": "Basic " + b64(f"{self.user}:{self.password}".encode())}
        if self.auth == "token":
            assert self.issuer is not None
            token = self.issuer.token([f"repository:{repository}:pull,push"], True)
            return {"Authorization": f"Bearer {token}"}
        return {}

    def push_blob(self, repository: str, data: bytes) -> str:
        digest = sha256_digest(data)
        with self._client() as client:
            headers = self._auth(client, repository)
            start = client.post(f"/v2/{repository}/blobs/uploads/", headers=headers)
            start.raise_for_status()
            location = start.headers["location"]
            sep = "&" if "?" in location else "?"
            done = client.put(
                f"{location}{sep}digest={digest}",
                content=data,
                headers={**headers, "Content-Type": "application/octet-stream"},
            )
            done.raise_for_status()
        return digest

    def push_manifest(
        self, repository: str, reference: str, manifest: dict[str, Any] | bytes, media_type: str
    ) -> str:
        body = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
        with self._client() as client:
            headers = {**self._auth(client, repository), "Content-Type": media_type}
            response = client.put(
                f"/v2/{repository}/manifests/{reference}", content=body, headers=headers
            )
            response.raise_for_status()
        return sha256_digest(body)


@contextlib.contextmanager
def local_registry(directory: Path, auth: str | None = None) -> Iterator[LocalRegistry]:
    registry = LocalRegistry(directory, auth=auth).start()
    try:
        yield registry
    finally:
        registry.stop()


# -- OCI layouts -----------------------------------------------------------------------------


def _layer(seed: str) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        content = f"built for {seed}\n".encode()
        info = tarfile.TarInfo("hello.txt")
        info.size, info.mtime = len(content), 0
        tar.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue(), mtime=0)


def _write_blob(layout: Path, data: bytes) -> dict[str, Any]:
    digest = sha256_digest(data)
    (layout / "blobs" / "sha256" / digest.split(":")[1]).write_bytes(data)
    return {"digest": digest, "size": len(data)}


def _image(layout: Path, seed: str, arch: str) -> dict[str, Any]:
    layer = _layer(f"{seed}/{arch}")
    diff_id = sha256_digest(gzip.decompress(layer))
    config = json.dumps(
        {
            "architecture": arch,
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "config": {},
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                **_write_blob(layout, config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    **_write_blob(layout, layer),
                }
            ],
        }
    ).encode()
    return {
        "mediaType": OCI_MANIFEST,
        **_write_blob(layout, manifest),
        "platform": {"architecture": arch, "os": "linux"},
    }


def build_layout(layout: Path, tag: str, *, platforms: int = 0, seed: str = "") -> str:
    """An OCI image layout holding one image (or an index of ``platforms``) at ``tag``."""
    shutil.rmtree(layout, ignore_errors=True)
    (layout / "blobs" / "sha256").mkdir(parents=True)
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    if platforms:
        arches = ["amd64", "arm64", "s390x", "ppc64le"][:platforms]
        children = [_image(layout, seed, arch) for arch in arches]
        index = json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}
        ).encode()
        top = {"mediaType": OCI_INDEX, **_write_blob(layout, index)}
    else:
        top = _image(layout, seed, "amd64")
        top.pop("platform")
    top["annotations"] = {"org.opencontainers.image.ref.name": tag}
    (layout / "index.json").write_text(
        json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [top]})
    )
    return str(top["digest"])


# -- @sigstore/oci (run with node) -----------------------------------------------------------

_ATTACH_SCRIPT = r"""
const { attachArtifactToImage } = require('@sigstore/oci');
const fs = require('fs');
const [imageName, imageDigest, file, mediaType, user, password] = process.argv.slice(2);
attachArtifactToImage({
  imageName, imageDigest, mediaType,
  artifact: fs.readFileSync(file),
  credentials: user ? { username: user, password } : null,
  annotations: { 'dev.sigstore.bundle.content': 'dsse-envelope' },
}).then(
  (d) => { process.stdout.write(JSON.stringify(d)); },
  (e) => { console.error(e, e.cause); process.exit(1); },
);
"""


def attach_with_sigstore_oci(
    registry: LocalRegistry,
    repository: str,
    digest: str,
    bundle: bytes,
    work: Path,
    media_type: str = BUNDLE_V03,
) -> dict[str, Any]:
    """Attach ``bundle`` to the image as GitHub's actions/attest does (@sigstore/oci)."""
    node = require_tool("node")
    modules = TOOLS_CACHE / "node_modules"
    if not (modules / "@sigstore" / "oci").is_dir():
        message = f"@sigstore/oci is not in {modules} (deploy/e2e/install-registry-tools.sh)"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    script = work / "attach.js"
    script.write_text(_ATTACH_SCRIPT)
    artifact = work / f"bundle-{hashlib.sha256(bundle).hexdigest()[:12]}.json"
    artifact.write_bytes(bundle)
    user, password = registry.credentials() or ("", "")
    result = subprocess.run(
        [
            node,
            str(script),
            f"{registry.host}/{repository}",
            digest,
            str(artifact),
            media_type,
            user,
            password,
        ],
        capture_output=True,
        timeout=60,
        env={**os.environ, "NODE_PATH": str(modules)},
    )
    if result.returncode != 0:
        raise RuntimeError(f"@sigstore/oci failed: {result.stderr.decode()[-2000:]}")
    return dict(json.loads(result.stdout))
