"""An OCI distribution (v2) client on httpx: manifests, indexes, blobs and the referrers API,
and the three writes that attach an artifact (blob upload, manifest PUT).

What registries need and a plain HTTP client lacks, written once here:

* the token flow of the Docker token spec (``WWW-Authenticate: Bearer realm,service,scope``,
  anonymous or with credentials, refresh tokens) and basic auth;
* plain HTTP only for loopback registries and those listed as insecure; a registry's own CA
  from ``<certs dir>/<host>/ca.crt`` (the layout of Docker's ``certs.d``);
* Docker Hub's API host: ``docker.io`` is served by ``index.docker.io``;
* retries on 429 and 5xx with backoff, honouring ``Retry-After``, all inside one deadline per
  fetch (a retry that cannot fit is not attempted: the error says when to come back);
* bounded bodies (a manifest larger than the limit is refused while it streams in) and content
  checked against the digest it was asked by;
* at most N requests in flight per registry, so a burst of misses cannot hammer one registry.

Synchronous by design: it runs in the worker threads that already serve uploads and admission
misses; the event loop that answers webhooks never waits on a registry.
"""

from __future__ import annotations

import email.utils
import hashlib
import ipaddress
import json
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from app import __version__
from app.registry import errors as E
from app.registry.allowlist import DEFAULT as DEFAULT_ALLOWED
from app.registry.allowlist import RegistryAllowlist
from app.registry.credentials import Credential
from app.registry.errors import RegistryError

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST)
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
DOCKER_HUB_API_HOST = "index.docker.io"
REFERRERS_PROBE_SECONDS = 300.0
_CHUNK = 64 * 1024
_CHALLENGE_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class Deadline:
    """An instant (monotonic clock) by which a whole fetch must be done."""

    at: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds)

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def left(self, what: str, registry: str) -> float:
        remaining = self.remaining()
        if remaining <= 0:
            raise RegistryError(E.TIMEOUT, f"deadline passed before {what}", registry=registry)
        return remaining


@dataclass(frozen=True)
class Fetched:
    """A manifest as served: its exact bytes, media type and (checked) digest."""

    content: bytes
    media_type: str
    digest: str

    def json(self) -> dict[str, Any]:
        try:
            document = json.loads(self.content)
        except ValueError as exc:
            raise RegistryError(E.MALFORMED, f"manifest {self.digest} is not JSON") from exc
        if not isinstance(document, dict):
            raise RegistryError(E.MALFORMED, f"manifest {self.digest} is not a JSON object")
        return document


@dataclass(frozen=True)
class _Response:
    status: int
    headers: httpx.Headers
    body: bytes


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def is_digest(reference: str) -> bool:
    return bool(_DIGEST.match(reference))


def is_loopback(registry: str) -> bool:
    if registry.startswith("["):  # [v6 address]:port
        host = registry[1 : registry.find("]")]
    else:
        host = registry.rsplit(":", 1)[0] if registry.count(":") == 1 else registry
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def api_host(registry: str) -> str:
    return DOCKER_HUB_API_HOST if registry == "docker.io" else registry


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="...",service="...",scope="..."`` as ("bearer", {params})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {
        m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
        for m in _CHALLENGE_PARAM.finditer(rest)
    }
    return scheme.lower(), params


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now if now is not None else datetime.now(UTC).timestamp()
    return max(0.0, when.timestamp() - current)


class RegistryClient:
    """One per process: connection pools, tokens and per-registry slots are shared."""

    def __init__(
        self,
        *,
        certs_dir: Path | None = None,
        insecure: Sequence[str] = (),
        concurrency: int = 4,
        retries: int = 3,
        backoff: float = 0.2,
        max_manifest_bytes: int = 4 * 1024 * 1024,
        max_blob_bytes: int = 10 * 1024 * 1024,
        transport: httpx.BaseTransport | None = None,
        allowed: str | RegistryAllowlist = DEFAULT_ALLOWED,
    ) -> None:
        self.allowlist = (
            allowed if isinstance(allowed, RegistryAllowlist) else RegistryAllowlist(allowed)
        )
        self.certs_dir = certs_dir
        self.insecure = frozenset(h.strip().lower() for h in insecure if h.strip())
        self.concurrency = concurrency
        self.retries = retries
        self.backoff = backoff
        self.max_manifest_bytes = max_manifest_bytes
        self.max_blob_bytes = max_blob_bytes
        self._transport = transport
        self._lock = threading.Lock()
        self._clients: dict[str, httpx.Client] = {}
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        # Keyed by (registry, repository, user, push): a pull token cannot push.
        self._tokens: dict[tuple[str, str, str | None, bool], tuple[str, float]] = {}
        self.requests = 0  # every HTTP request sent (bench: registry requests per image)
        # Registries found without the referrers API, until when: a registry gains the API by
        # an upgrade, not between two pulls, so one probe per registry every few minutes will
        # do instead of one per image.
        self._no_referrers: dict[str, float] = {}

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()

    # -- the three reads -------------------------------------------------------------------

    def manifest(
        self,
        registry: str,
        repository: str,
        reference: str,
        deadline: Deadline,
        *,
        credential: Credential | None = None,
        accept: Sequence[str] = MANIFEST_TYPES,
    ) -> Fetched | None:
        """The manifest or index at a tag or digest; None when the registry has none (404)."""
        response = self._get(
            registry,
            repository,
            f"/v2/{repository}/manifests/{reference}",
            deadline,
            credential=credential,
            accept=", ".join(accept),
            limit=self.max_manifest_bytes,
            too_large=E.MANIFEST_TOO_LARGE,
        )
        if response.status == 404:
            return None
        self._raise_for_status(response, registry, f"manifest {repository}:{reference}")
        digest = sha256_digest(response.body)
        if is_digest(reference) and digest != reference:
            raise RegistryError(
                E.DIGEST_MISMATCH,
                f"manifest asked for as {reference} hashes to {digest}",
                registry=registry,
            )
        media_type = response.headers.get("content-type", "").split(";", 1)[0].strip()
        if media_type not in MANIFEST_TYPES:
            # Some registries answer application/json; the document says what it is.
            media_type = _declared_media_type(response.body) or media_type
        return Fetched(response.body, media_type, digest)

    def blob(
        self,
        registry: str,
        repository: str,
        digest: str,
        deadline: Deadline,
        *,
        credential: Credential | None = None,
        limit: int | None = None,
    ) -> bytes:
        """A blob's bytes, checked against ``digest``."""
        if not is_digest(digest):
            raise RegistryError(
                E.MALFORMED, f"unsupported blob digest {digest!r}", registry=registry
            )
        response = self._get(
            registry,
            repository,
            f"/v2/{repository}/blobs/{digest}",
            deadline,
            credential=credential,
            accept="*/*",
            limit=limit or self.max_blob_bytes,
            too_large=E.BLOB_TOO_LARGE,
        )
        if response.status == 404:
            raise RegistryError(
                E.NOT_FOUND, f"blob {digest} not found in {repository}", registry=registry
            )
        self._raise_for_status(response, registry, f"blob {digest}")
        actual = sha256_digest(response.body)
        if actual != digest:
            raise RegistryError(
                E.DIGEST_MISMATCH,
                f"blob {digest} of {repository} hashes to {actual}: the registry served other "
                "content than its manifest names",
                registry=registry,
            )
        return response.body

    def referrers(
        self,
        registry: str,
        repository: str,
        digest: str,
        deadline: Deadline,
        *,
        credential: Credential | None = None,
    ) -> dict[str, Any] | None:
        """The OCI 1.1 referrers index of ``digest``; None when the registry lacks the API.

        The distribution spec: a registry that supports it answers 200 with an image index
        (empty when nothing refers); 404 means unsupported, and the client falls back to the
        referrers tag schema.
        """
        with self._lock:
            absent_until = self._no_referrers.get(registry, 0.0)
        if absent_until > time.monotonic():
            return None
        response = self._get(
            registry,
            repository,
            f"/v2/{repository}/referrers/{digest}",
            deadline,
            credential=credential,
            accept=OCI_INDEX,
            limit=self.max_manifest_bytes,
            too_large=E.MANIFEST_TOO_LARGE,
        )
        if response.status in (404, 405):
            return self._lacks_referrers(registry)
        self._raise_for_status(response, registry, f"referrers of {digest}")
        media_type = response.headers.get("content-type", "").split(";", 1)[0].strip()
        if media_type and media_type not in (OCI_INDEX, "application/json"):
            # A catch-all route (an HTML page, a proxy's answer): not the API.
            return self._lacks_referrers(registry)
        try:
            document = json.loads(response.body)
        except ValueError:
            return self._lacks_referrers(registry)
        return document if isinstance(document, dict) else self._lacks_referrers(registry)

    def _lacks_referrers(self, registry: str) -> None:
        with self._lock:
            self._no_referrers[registry] = time.monotonic() + REFERRERS_PROBE_SECONDS
        return None

    # -- the writes (attaching an artifact) ------------------------------------------------

    def push_blob(
        self,
        registry: str,
        repository: str,
        data: bytes,
        deadline: Deadline,
        *,
        credential: Credential | None = None,
    ) -> str:
        """Upload ``data`` as one blob (POST, then a monolithic PUT); its digest.

        A blob already in the repository (HEAD 200) is not sent again: uploads are by content.
        """
        digest = sha256_digest(data)
        path = f"/v2/{repository}/blobs/{digest}"
        head = self._request("HEAD", registry, repository, path, deadline, credential, push=True)
        if head.status == 200:
            return digest
        start = self._request(
            "POST",
            registry,
            repository,
            f"/v2/{repository}/blobs/uploads/",
            deadline,
            credential,
            push=True,
        )
        self._raise_for_status(start, registry, f"blob upload to {repository}")
        if not start.headers.get("location"):
            raise RegistryError(
                E.UNAVAILABLE, f"{registry} started an upload without a Location", registry=registry
            )
        # The Location may be relative, and already carries the upload's state as a query.
        location = httpx.URL(self._base_url(registry)).join(start.headers["location"])
        put = self._request(
            "PUT",
            registry,
            repository,
            str(location.copy_merge_params({"digest": digest})),
            deadline,
            credential,
            push=True,
            content=data,
            content_type="application/octet-stream",
        )
        self._raise_for_status(put, registry, f"blob {digest} upload to {repository}")
        return digest

    def put_manifest(
        self,
        registry: str,
        repository: str,
        reference: str,
        content: bytes,
        media_type: str,
        deadline: Deadline,
        *,
        credential: Credential | None = None,
    ) -> tuple[str, bool]:
        """PUT a manifest or index at a tag or digest; its digest, and whether the registry
        answered ``OCI-Subject`` (it indexed the ``subject`` itself: the referrers API)."""
        if len(content) > self.max_manifest_bytes:
            raise RegistryError(
                E.MANIFEST_TOO_LARGE,
                f"a {len(content)}-byte manifest is over the {self.max_manifest_bytes}-byte limit",
                registry=registry,
            )
        digest = sha256_digest(content)
        response = self._request(
            "PUT",
            registry,
            repository,
            f"/v2/{repository}/manifests/{reference}",
            deadline,
            credential,
            push=True,
            content=content,
            content_type=media_type,
        )
        self._raise_for_status(response, registry, f"manifest {repository}:{reference}")
        stored = response.headers.get("docker-content-digest")
        if stored and stored != digest:
            raise RegistryError(
                E.DIGEST_MISMATCH,
                f"{registry} stored the manifest as {stored}, not its digest {digest}",
                registry=registry,
            )
        return digest, bool(response.headers.get("oci-subject"))

    # -- HTTP ------------------------------------------------------------------------------

    def _get(
        self,
        registry: str,
        repository: str,
        path: str,
        deadline: Deadline,
        *,
        credential: Credential | None,
        accept: str,
        limit: int,
        too_large: str,
    ) -> _Response:
        return self._request(
            "GET",
            registry,
            repository,
            path,
            deadline,
            credential,
            accept=accept,
            limit=limit,
            too_large=too_large,
        )

    def _request(
        self,
        method: str,
        registry: str,
        repository: str,
        path: str,
        deadline: Deadline,
        credential: Credential | None,
        *,
        push: bool = False,
        content: bytes | None = None,
        content_type: str | None = None,
        accept: str = "*/*",
        limit: int = 64 * 1024,
        too_large: str = E.MANIFEST_TOO_LARGE,
    ) -> _Response:
        """One request with the token flow and retries; ``path`` may be a whole URL (an upload
        Location). ``push`` asks the token service for ``pull,push`` on the repository."""
        url = path if "://" in path else self._base_url(registry) + path
        for attempt in range(self.retries + 1):
            with self._slot(registry, deadline):
                response = self._send(
                    registry,
                    url,
                    deadline,
                    accept,
                    limit,
                    too_large,
                    self._auth_header(registry, repository, credential, push),
                    method=method,
                    content=content,
                    content_type=content_type,
                )
                if response.status == 401:
                    header = self._authenticate(
                        registry, repository, response, credential, deadline, push
                    )
                    response = self._send(
                        registry,
                        url,
                        deadline,
                        accept,
                        limit,
                        too_large,
                        header,
                        method=method,
                        content=content,
                        content_type=content_type,
                    )
                    if response.status == 401:
                        raise RegistryError(
                            E.UNAUTHORIZED,
                            f"{registry} refused the credentials for {repository}"
                            if credential
                            else f"{registry} needs credentials for {repository} and none are "
                            "configured (Docker config or a pull secret)",
                            registry=registry,
                        )
            if response.status not in RETRY_STATUSES:
                return response
            self._wait_before_retry(registry, response, attempt, deadline)
        raise AssertionError("unreachable")  # the last attempt raises in _wait_before_retry

    def _wait_before_retry(
        self, registry: str, response: _Response, attempt: int, deadline: Deadline
    ) -> None:
        asked = retry_after(response.headers.get("retry-after"))
        wait = asked if asked is not None else self.backoff * (2**attempt)
        code = E.RATE_LIMITED if response.status == 429 else E.UNAVAILABLE
        what = "rate limited (429)" if response.status == 429 else f"answered {response.status}"
        if attempt >= self.retries:
            raise RegistryError(
                code, f"{registry} {what} after {attempt + 1} attempts", registry=registry
            )
        if wait >= deadline.remaining():
            later = f"; it asks to retry after {asked:g}s" if asked is not None else ""
            raise RegistryError(
                code, f"{registry} {what}{later}, beyond this fetch's deadline", registry=registry
            )
        time.sleep(wait)

    def _send(
        self,
        registry: str,
        url: str,
        deadline: Deadline,
        accept: str,
        limit: int,
        too_large: str,
        authorization: str | None,
        *,
        method: str = "GET",
        content: bytes | None = None,
        content_type: str | None = None,
    ) -> _Response:
        remaining = deadline.left(f"{method} {url}", registry)
        headers = {"Accept": accept, "User-Agent": f"provenant/{__version__}"}
        if authorization:
            headers["Authorization"] = authorization
        if content_type:
            headers["Content-Type"] = content_type
        client = self._client(registry)
        self.requests += 1
        try:
            with client.stream(
                method, url, headers=headers, content=content, timeout=httpx.Timeout(remaining)
            ) as response:
                body = self._read(response, registry, url, deadline, limit, too_large)
                return _Response(response.status_code, response.headers, body)
        except httpx.TimeoutException as exc:
            raise RegistryError(
                E.TIMEOUT, f"{registry} did not answer {method} {url} in time", registry=registry
            ) from exc
        except httpx.HTTPError as exc:
            raise RegistryError(
                E.UNAVAILABLE, f"{registry}: {type(exc).__name__}: {exc}", registry=registry
            ) from exc

    @staticmethod
    def _read(
        response: httpx.Response,
        registry: str,
        url: str,
        deadline: Deadline,
        limit: int,
        too_large: str,
    ) -> bytes:
        if response.status_code >= 300 and response.status_code not in (401,):
            limit = min(limit, 64 * 1024)  # error bodies are read only for their message
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit and response.status_code < 300:
            raise RegistryError(
                too_large,
                f"{url} is {declared} bytes, over the {limit}-byte limit",
                registry=registry,
            )
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes(_CHUNK):
            size += len(chunk)
            if size > limit:
                if response.status_code >= 300:
                    break
                raise RegistryError(
                    too_large, f"{url} exceeds the {limit}-byte limit", registry=registry
                )
            chunks.append(chunk)
            # A registry trickling bytes resets the read timeout on every chunk.
            deadline.left(f"the end of {url}", registry)
        return b"".join(chunks)

    def _raise_for_status(self, response: _Response, registry: str, what: str) -> None:
        if 200 <= response.status < 300:
            return
        detail = _error_detail(response.body)
        if response.status == 403:
            raise RegistryError(
                E.UNAUTHORIZED, f"{registry} denied access to {what}{detail}", registry=registry
            )
        if response.status == 404:
            raise RegistryError(
                E.NOT_FOUND, f"{what} not found on {registry}{detail}", registry=registry
            )
        raise RegistryError(
            E.UNAVAILABLE,
            f"{registry} answered {response.status} for {what}{detail}",
            registry=registry,
        )

    # -- authentication --------------------------------------------------------------------

    def _auth_header(
        self, registry: str, repository: str, credential: Credential | None, push: bool = False
    ) -> str | None:
        key = (registry, repository, credential.username if credential else None, push)
        with self._lock:
            cached = self._tokens.get(key)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        return None

    def _authenticate(
        self,
        registry: str,
        repository: str,
        response: _Response,
        credential: Credential | None,
        deadline: Deadline,
        push: bool = False,
    ) -> str | None:
        scheme, params = parse_challenge(response.headers.get("www-authenticate", ""))
        key = (registry, repository, credential.username if credential else None, push)
        if scheme == "basic":
            if credential is None or credential.username is None:
                return None
            header = httpx.BasicAuth(credential.username, credential.password or "")
            value = _basic_header(header)
            with self._lock:
                self._tokens[key] = (value, time.monotonic() + 3600)
            return value
        if scheme != "bearer" or "realm" not in params:
            raise RegistryError(
                E.UNAUTHORIZED,
                f"{registry} answered 401 with an unusable challenge {scheme!r}",
                registry=registry,
            )
        if push:
            # The challenge names what this one request needs (a HEAD asks only pull); an
            # upload's requests share one token that may write.
            params = {**params, "scope": f"repository:{repository}:pull,push"}
        token, lifetime = self._fetch_token(registry, repository, params, credential, deadline)
        value = f"Bearer {token}"
        with self._lock:
            # Renewed a little early: a token expiring mid-fetch would cost a 401 round trip.
            self._tokens[key] = (value, time.monotonic() + max(lifetime - 10, lifetime / 2))
        return value

    def _fetch_token(
        self,
        registry: str,
        repository: str,
        params: dict[str, str],
        credential: Credential | None,
        deadline: Deadline,
    ) -> tuple[str, float]:
        realm = params["realm"]
        if not realm.startswith("https://") and not (
            realm.startswith("http://") and self._plain_http_allowed(httpx.URL(realm).host or "")
        ):
            raise RegistryError(
                E.INSECURE,
                f"{registry}'s token realm {realm} is not HTTPS; credentials "
                "are never sent in the clear",
                registry=registry,
            )
        query = {"scope": params.get("scope") or f"repository:{repository}:pull"}
        if params.get("service"):
            query["service"] = params["service"]
        client = self._client(registry)
        timeout = httpx.Timeout(deadline.left("the token request", registry))
        self.requests += 1
        try:
            if credential is not None and credential.identity_token:
                response = client.post(
                    realm,
                    timeout=timeout,
                    data={
                        **query,
                        "grant_type": "refresh_token",
                        "client_id": "provenant",
                        "refresh_token": credential.identity_token,
                    },
                )
            else:
                auth = (
                    httpx.BasicAuth(credential.username, credential.password or "")
                    if credential is not None and credential.username
                    else None
                )
                response = client.get(realm, params=query, auth=auth, timeout=timeout)
        except httpx.TimeoutException as exc:
            raise RegistryError(
                E.TIMEOUT, f"{registry}'s token service {realm} timed out", registry=registry
            ) from exc
        except httpx.HTTPError as exc:
            raise RegistryError(
                E.UNAVAILABLE, f"{registry}'s token service {realm}: {exc}", registry=registry
            ) from exc
        if response.status_code in (401, 403):
            raise RegistryError(
                E.UNAUTHORIZED,
                f"{registry}'s token service refused "
                f"{'the credentials' if credential else 'anonymous access'} "
                f"for {repository}",
                registry=registry,
            )
        if response.status_code != 200:
            raise RegistryError(
                E.UNAVAILABLE,
                f"{registry}'s token service answered {response.status_code}",
                registry=registry,
            )
        try:
            body = response.json()
            token = body.get("token") or body.get("access_token")
            lifetime = float(body.get("expires_in") or 60)
        except (ValueError, AttributeError, TypeError) as exc:
            raise RegistryError(
                E.UNAVAILABLE, f"{registry}'s token service sent no token", registry=registry
            ) from exc
        if not isinstance(token, str) or not token:
            raise RegistryError(
                E.UNAVAILABLE, f"{registry}'s token service sent no token", registry=registry
            )
        return token, lifetime

    # -- transport -------------------------------------------------------------------------

    def _plain_http_allowed(self, registry: str) -> bool:
        return is_loopback(registry) or registry in self.insecure

    def _ca_file(self, registry: str) -> Path | None:
        if self.certs_dir is None:
            return None
        path = self.certs_dir / registry / "ca.crt"
        return path if path.is_file() else None

    def _base_url(self, registry: str) -> str:
        if self._ca_file(registry) is None and self._plain_http_allowed(registry):
            return f"http://{api_host(registry)}"
        return f"https://{api_host(registry)}"

    def _client(self, registry: str) -> httpx.Client:
        self.allowlist.check_registry(registry)
        with self._lock:
            client = self._clients.get(registry)
            if client is None:
                ca_file = self._ca_file(registry)
                verify: ssl.SSLContext | bool = (
                    ssl.create_default_context(cafile=str(ca_file)) if ca_file else True
                )
                client = httpx.Client(
                    verify=verify,
                    follow_redirects=True,
                    transport=self._transport,
                    # Every request, redirects and token realms included, before it connects.
                    event_hooks={"request": [self._guard(registry)]},
                )
                self._clients[registry] = client
            return client

    def _guard(self, registry: str) -> Callable[[httpx.Request], None]:
        def check(request: httpx.Request) -> None:
            url = request.url
            port = url.port or (443 if url.scheme == "https" else 80)
            self.allowlist.check_connection(registry, url.host, port)

        return check

    @contextmanager
    def _slot(self, registry: str, deadline: Deadline) -> Iterator[None]:
        with self._lock:
            slots = self._slots.get(registry)
            if slots is None:
                slots = self._slots[registry] = threading.BoundedSemaphore(self.concurrency)
        if not slots.acquire(timeout=max(deadline.remaining(), 0)):
            raise RegistryError(
                E.TIMEOUT,
                f"no free request slot for {registry} before the deadline "
                f"({self.concurrency} in flight)",
                registry=registry,
            )
        try:
            yield
        finally:
            slots.release()


def _basic_header(auth: httpx.BasicAuth) -> str:
    request = httpx.Request("GET", "http://x")
    flow = auth.auth_flow(request)
    return next(flow).headers["Authorization"]


def _declared_media_type(body: bytes) -> str | None:
    try:
        document = json.loads(body)
    except ValueError:
        return None
    value = document.get("mediaType") if isinstance(document, dict) else None
    if isinstance(value, str):
        return value
    if isinstance(document, dict) and isinstance(document.get("manifests"), list):
        return OCI_INDEX
    return OCI_MANIFEST if isinstance(document, dict) and "layers" in document else None


def _error_detail(body: bytes) -> str:
    """The registry's own error message (distribution spec ``errors[].message``), if any."""
    try:
        document = json.loads(body)
        first = document["errors"][0]
        return f": {first.get('code', '')} {first.get('message', '')}".rstrip()
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return ""
