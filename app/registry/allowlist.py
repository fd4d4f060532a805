"""Which hosts the registry client may contact (PROVENANT_REGISTRY_ALLOWED).

An ``upload`` token can name any image in ``POST /v1/registry/pull``, so without a limit the
server would connect wherever the caller (or a registry's redirect, or its token realm) points:
the metadata service at 169.254.169.254, a database on localhost, the cluster's internal
services. Two rules, applied before every connection:

* the image's registry must be named by an entry, or ``public`` must be listed (the default);
* every host actually contacted (the registry, a redirect target, a token realm, an upload
  location) must either be named by an entry or resolve only to public addresses. Loopback,
  private, link-local, unique-local, multicast and reserved addresses are reached only when
  their host is listed explicitly.

Entries: ``host`` (any port), ``host:port``, ``*.example.com`` (subdomains of example.com),
``public``; ``none`` (or any list matching nothing) turns registry access off.

The address check resolves the name before httpx does, so a name that answers differently the
second time (DNS rebinding) is not caught here; a network policy is the complete answer.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass

from app.registry import errors as E
from app.registry.errors import RegistryError

SETTING = "PROVENANT_REGISTRY_ALLOWED"
DEFAULT = "public"

Resolver = Callable[[str, int], list[str]]


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        # Unresolvable: the connection itself fails (and is reported as such); nothing to reach.
        return []
    return [str(info[4][0]) for info in infos]


def is_public(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def split_host_port(registry: str, default_port: int | None = None) -> tuple[str, int | None]:
    """``host[:port]`` or ``[v6]:port`` as (lowercase host, port or ``default_port``)."""
    registry = registry.strip().lower()
    if registry.startswith("["):
        end = registry.find("]")
        host, rest = registry[1:end], registry[end + 1 :]
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else default_port
    if registry.count(":") == 1:
        host, _, port = registry.partition(":")
        return host, int(port) if port.isdigit() else default_port
    return registry, default_port


@dataclass(frozen=True)
class _Entry:
    host: str
    port: int | None
    wildcard: bool

    def matches(self, host: str, port: int | None) -> bool:
        if self.port is not None and port != self.port:
            return False
        if self.wildcard:
            return host.endswith("." + self.host)
        return host == self.host


class RegistryAllowlist:
    def __init__(self, text: str = DEFAULT, resolver: Resolver = _resolve) -> None:
        self.text = text
        self.public = False
        self.entries: list[_Entry] = []
        self._resolve = resolver
        for raw in text.split(","):
            item = raw.strip().lower()
            if not item or item == "none":
                continue
            if item == "public":
                self.public = True
                continue
            wildcard = item.startswith("*.")
            host, port = split_host_port(item[2:] if wildcard else item)
            self.entries.append(_Entry(host.rstrip("."), port, wildcard))

    def listed(self, host: str, port: int | None) -> bool:
        host = host.lower().rstrip(".")
        return any(entry.matches(host, port) for entry in self.entries)

    def check_registry(self, registry: str) -> None:
        """The image's registry (``host[:port]``) may be used at all."""
        host, port = split_host_port(registry)
        if self.public or self.listed(host, port) or self.listed(host, 443):
            return
        raise self._refused(registry, f"{registry} is not in {SETTING} ({self.text or 'empty'})")

    def check_connection(self, registry: str, host: str, port: int) -> None:
        """``host:port`` may be connected to (on behalf of ``registry``)."""
        host = host.lower().rstrip(".")
        if self.listed(host, port):
            return
        addresses = self._resolve(host, port)
        private = [a for a in addresses if not is_public(a)]
        if private:
            raise self._refused(
                registry,
                f"{host}:{port} resolves to a non-public address ({private[0]}); "
                f"list it in {SETTING} to allow it",
            )

    def _refused(self, registry: str, message: str) -> RegistryError:
        return RegistryError(E.NOT_ALLOWED, message, registry=registry)
