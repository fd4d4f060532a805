"""Image references and the globs policies select them with.

References are normalized the way the container runtime resolves them (``nginx`` is
``docker.io/library/nginx``) before any glob sees them, so a policy written for
``docker.io/library/nginx`` cannot be dodged by spelling the image ``nginx`` or
``index.docker.io/library/nginx``. Globs match the repository name (registry/path) unless they
name a tag or digest themselves: a policy about an image applies whatever tag it is run by.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

DOCKER_HUB = "docker.io"
# Every spelling of Docker Hub the docker CLI and containerd accept.
_DOCKER_HUB_ALIASES = frozenset(
    {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
)
_DIGEST_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}

# distribution/reference grammar, reduced to what registries accept in practice.
_DOMAIN = re.compile(
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"(?::[0-9]+)?"
)
_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"([a-z0-9]+):([0-9a-fA-F]+)")
_GLOB_CHARS = re.compile(r"[a-zA-Z0-9._:/@*-]+")
_NAMESPACE_GLOB_CHARS = re.compile(r"[a-z0-9*-]+")


@dataclass(frozen=True)
class ImageRef:
    original: str
    registry: str  # lowercase host[:port]; Docker Hub is always "docker.io"
    repository: str  # path inside the registry, e.g. "library/nginx"
    tag: str | None
    digest: tuple[str, str] | None  # (algorithm, lowercase hex)

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"

    @property
    def digest_string(self) -> str | None:
        return f"{self.digest[0]}:{self.digest[1]}" if self.digest else None

    @property
    def reference(self) -> str:
        """The normalized reference: name, then ``:tag`` and ``@digest`` when present."""
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest_string}"
        return text

    def as_cel(self) -> dict[str, str | None]:
        return {
            "reference": self.original,
            "normalized": self.reference,
            "name": self.name,
            "registry": self.registry,
            "repository": self.repository,
            "tag": self.tag,
            "digest": self.digest_string,
        }


def _looks_like_domain(component: str) -> bool:
    # The docker CLI's rule: a first component is a registry when it has a dot or a port, or
    # is "localhost"; uppercase also marks a host because repository paths must be lowercase.
    return (
        "." in component
        or ":" in component
        or component == "localhost"
        or (component.lower() != component)
    )


# Every admission parses each of its images several times (policy selection, the index rows),
# and a cluster runs few distinct images: the results are immutable, so they are shared.
@functools.lru_cache(maxsize=16384)
def parse_image(reference: str) -> ImageRef:
    """Parse and normalize ``reference``; raise ValueError saying what is wrong with it."""
    text = reference.strip()
    if not text or len(text.split()) != 1:
        raise ValueError(f"invalid image reference {reference!r}: empty or contains whitespace")
    rest, _, digest_text = text.partition("@")
    digest = _parse_digest(digest_text, reference) if digest_text else None
    tag = None
    last_slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > last_slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG.fullmatch(tag):
            raise ValueError(f"invalid image reference {reference!r}: bad tag {tag!r}")
    first, sep, path = rest.partition("/")
    if sep and _looks_like_domain(first):
        registry = first.lower()
    else:
        registry, path = DOCKER_HUB, rest
    if registry in _DOCKER_HUB_ALIASES:
        registry = DOCKER_HUB
        if "/" not in path:
            path = f"library/{path}"
    if not _DOMAIN.fullmatch(registry):
        raise ValueError(f"invalid image reference {reference!r}: bad registry {registry!r}")
    components = path.split("/")
    bad = [c for c in components if not _PATH_COMPONENT.fullmatch(c)]
    if bad:
        raise ValueError(
            f"invalid image reference {reference!r}: bad repository component {bad[0]!r} "
            "(lowercase letters, digits and separators only)"
        )
    return ImageRef(reference, registry, path, tag, digest)


def _parse_digest(text: str, reference: str) -> tuple[str, str]:
    match = _DIGEST.fullmatch(text)
    if not match:
        raise ValueError(f"invalid image reference {reference!r}: bad digest {text!r}")
    algorithm, hex_ = match.group(1), match.group(2).lower()
    expected = _DIGEST_HEX_LENGTHS.get(algorithm)
    if expected is None:
        raise ValueError(f"invalid image reference {reference!r}: unsupported digest {algorithm}")
    if len(hex_) != expected:
        raise ValueError(
            f"invalid image reference {reference!r}: a {algorithm} digest has {expected} hex "
            f"digits, not {len(hex_)}"
        )
    return algorithm, hex_


# -- image globs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageGlob:
    pattern: str  # as written
    normalized: str  # after docker.io/library normalization
    regex: re.Pattern[str]
    whole_reference: bool  # the glob names a tag or digest: match the full reference

    def matches(self, image: ImageRef) -> bool:
        target = image.reference if self.whole_reference else image.name
        return self.regex.fullmatch(target) is not None


def _normalize_glob(glob: str) -> str:
    first, sep, rest = glob.partition("/")
    if first in ("*", "**"):
        return glob  # "any registry": nothing to normalize
    if sep and _looks_like_domain(first):
        registry, path = first.lower(), rest
    else:
        registry, path = DOCKER_HUB, glob
    if registry in _DOCKER_HUB_ALIASES:
        registry = DOCKER_HUB
        if "/" not in path and not path.startswith("**"):
            path = f"library/{path}"
    return f"{registry}/{path}"


def glob_to_regex(glob: str, *, segment: str = "/") -> str:
    """``*`` matches within one segment, ``**`` across segments; a ``/**/`` segment also
    matches a single ``/`` so ``a/**/b`` covers ``a/b`` (gitignore semantics)."""
    out: list[str] = []
    i, n = 0, len(glob)
    not_sep = f"[^{re.escape(segment)}]*"
    while i < n:
        if glob.startswith("**", i):
            at_start = i == 0 or glob[i - 1] == segment
            after = i + 2
            if at_start and after < n and glob[after] == segment:
                out.append(f"(?:.*{re.escape(segment)})?")
                i = after + 1
            else:
                out.append(".*")
                i = after
                while i < n and glob[i] == "*":  # "***" is "**"
                    i += 1
        elif glob[i] == "*":
            out.append(not_sep)
            i += 1
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return "".join(out)


def compile_image_glob(pattern: str) -> ImageGlob:
    """Raise ValueError for characters that cannot appear in an image reference."""
    if not _GLOB_CHARS.fullmatch(pattern):
        raise ValueError(
            f"invalid image glob {pattern!r}: only letters, digits, '.', '_', '-', ':', '/', "
            "'@' and '*' are allowed"
        )
    normalized = _normalize_glob(pattern)
    last_segment = normalized.rsplit("/", 1)[-1]
    whole = "@" in normalized or ":" in last_segment
    return ImageGlob(pattern, normalized, re.compile(glob_to_regex(normalized)), whole)


# -- namespace globs ----------------------------------------------------------------------------


@dataclass(frozen=True)
class NamespaceGlob:
    pattern: str
    regex: re.Pattern[str]

    def matches(self, namespace: str) -> bool:
        return self.regex.fullmatch(namespace) is not None


def compile_namespace_glob(pattern: str) -> NamespaceGlob:
    """Namespaces have no segments: ``*`` matches any run of characters."""
    if not _NAMESPACE_GLOB_CHARS.fullmatch(pattern):
        raise ValueError(
            f"invalid namespace glob {pattern!r}: lowercase letters, digits, '-' and '*' only"
        )
    return NamespaceGlob(pattern, re.compile(".*".join(re.escape(p) for p in pattern.split("*"))))


def any_matches(globs: tuple[NamespaceGlob, ...], namespace: str) -> NamespaceGlob | None:
    return next((g for g in globs if g.matches(namespace)), None)
