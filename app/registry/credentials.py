"""Registry credentials from Docker ``config.json`` files and Kubernetes pull secrets.

A ``kubernetes.io/dockerconfigjson`` Secret holds a ``.dockerconfigjson`` key with the same
JSON as ``~/.docker/config.json``; mounted into the service's Pod it is a file. Pull secrets
are looked up as ``<secrets dir>/<namespace>/<secret name>/.dockerconfigjson`` (one projected
volume per namespace), so a Pod's ``imagePullSecrets`` and a policy's ``pullSecrets`` name
them exactly as Kubernetes does. Credential helpers (``credHelpers``, ``credsStore``) run
programs and are not supported: the service never executes anything a config file names.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("provenant.registry")

DOCKER_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io")
SECRET_FILE = ".dockerconfigjson"  # noqa: S105 - a file name, not a secret


@dataclass(frozen=True)
class Credential:
    username: str | None = None
    password: str | None = None
    identity_token: str | None = None  # an OAuth2 refresh token for the token endpoint

    def __repr__(self) -> str:  # never a secret in a log line or traceback
        return f"Credential(username={self.username!r})"


def registry_key(key: str) -> str:
    """A config.json ``auths`` key as a registry host: schemes and paths are dropped, and every
    spelling of Docker Hub is ``docker.io`` (as image references are normalised)."""
    host = key.strip()
    for prefix in ("https://", "http://"):
        if host.startswith(prefix):
            host = host[len(prefix) :]
    host = host.split("/", 1)[0].lower()
    if host in ("index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"):
        return "docker.io"
    return host


def parse_docker_config(data: bytes | str, source: str) -> dict[str, Credential]:
    """The ``auths`` of a Docker config as host -> Credential; ValueError names the source."""
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise ValueError(f"{source}: not JSON ({exc})") from exc
    auths = document.get("auths") if isinstance(document, dict) else None
    if not isinstance(auths, dict):
        raise ValueError(f"{source}: no 'auths' object (a Docker config.json is expected)")
    found: dict[str, Credential] = {}
    for key, entry in auths.items():
        if not isinstance(entry, dict):
            continue
        credential = _credential(entry, f"{source} auths[{key!r}]")
        if credential is not None:
            found[registry_key(key)] = credential
    return found


def _credential(entry: dict[str, object], where: str) -> Credential | None:
    username, password = entry.get("username"), entry.get("password")
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            decoded = base64.b64decode(auth, validate=True).decode()
        except ValueError as exc:
            raise ValueError(f"{where}: 'auth' is not base64 of user:password") from exc
        username, sep, password = decoded.partition(":")
        if not sep:
            raise ValueError(f"{where}: 'auth' is not base64 of user:password")
    token = entry.get("identitytoken")
    if not (username or token):
        return None
    return Credential(
        username=str(username) if username else None,
        password=str(password) if password is not None else None,
        identity_token=str(token) if isinstance(token, str) and token else None,
    )


class Keychain:
    """Where credentials come from: pull secrets first (the Pod's or the policy's, by name, in
    the namespace), then the service's own Docker config."""

    def __init__(self, auth_file: Path | None = None, secrets_dir: Path | None = None) -> None:
        self.default: dict[str, Credential] = {}
        if auth_file is not None:
            self.default = parse_docker_config(auth_file.read_bytes(), str(auth_file))
        self.secrets_dir = secrets_dir

    def lookup(
        self, registry: str, namespace: str | None = None, secret_names: Sequence[str] = ()
    ) -> Credential | None:
        if namespace and self.secrets_dir is not None:
            for name in secret_names:
                credential = self._from_secret(namespace, name, registry)
                if credential is not None:
                    return credential
        return self.default.get(registry)

    def _from_secret(self, namespace: str, name: str, registry: str) -> Credential | None:
        assert self.secrets_dir is not None
        # Names come from Pods and policies: only a DNS-1123 name may become a path.
        if not _dns_label(namespace) or not _dns_subdomain(name):
            return None
        path = self.secrets_dir / namespace / name / SECRET_FILE
        try:
            return parse_docker_config(path.read_bytes(), str(path)).get(registry)
        except FileNotFoundError:
            return None
        except ValueError as exc:
            log.warning("pull secret %s/%s unusable: %s", namespace, name, exc)
            return None


def _dns_label(value: str) -> bool:
    allowed = all(c.isdigit() or c == "-" or (c.isalpha() and c.islower()) for c in value)
    return 0 < len(value) <= 63 and allowed and value[0] != "-" and value.isascii()


def _dns_subdomain(value: str) -> bool:
    return 0 < len(value) <= 253 and all(_dns_label(part) for part in value.split("."))
