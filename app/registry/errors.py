"""Registry failures, each with a stable code (the API's ``error.code``, the audit log's).

A registry failure is never a verification verdict: at admission it is an ``error`` (onError
applies), and its message says it came from the registry, not from a policy.
"""

from __future__ import annotations

# Codes are part of the public API: add, never rename.
INVALID_REFERENCE = "invalid_reference"
UNAUTHORIZED = "registry_unauthorized"
NOT_FOUND = "registry_not_found"
RATE_LIMITED = "registry_rate_limited"
UNAVAILABLE = "registry_unavailable"
TIMEOUT = "registry_timeout"
INSECURE = "registry_insecure"
MANIFEST_TOO_LARGE = "manifest_too_large"
BLOB_TOO_LARGE = "blob_too_large"
DIGEST_MISMATCH = "registry_digest_mismatch"  # content does not hash to the digest asked for
MALFORMED = "registry_malformed"
# PROVENANT_REGISTRY_ALLOWED refuses the registry or a host it points to (redirect, realm).
NOT_ALLOWED = "registry_not_allowed"
# A signature or attestation found beside image X that names another image: its own code, so
# it is never confused with a bad signature.
IMAGE_DIGEST_MISMATCH = "image_digest_mismatch"


class RegistryError(Exception):
    """The registry could not give us what we asked for (or gave something else)."""

    def __init__(self, code: str, message: str, *, registry: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.registry = registry

    def __repr__(self) -> str:
        return f"RegistryError({self.code!r}, {self.message!r})"
