"""Sigstore trust roots (trusted_root.json), loaded offline.

"public-good" and "staging" are the roots shipped inside the sigstore package (never refreshed
over TUF: nothing in verification touches the network); every ``<policy_dir>/trust/<name>.json``
adds a root called ``<name>``. A policy file named like a built-in root replaces it, which is
how an operator rolls forward after a Sigstore key rotation without upgrading the package.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from sigstore.errors import Error as SigstoreError
from sigstore.models import TrustedRoot
from sigstore_models.trustroot import v1 as trustroot_v1

BUILTIN_ROOTS: dict[str, str] = {
    "public-good": "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev",
    "staging": "https%3A%2F%2Ftuf-repo-cdn.sigstage.dev",
}


class TrustRootError(ValueError):
    """A trusted_root.json that cannot be used; the message names the file."""


def builtin_root_path(name: str) -> Path:
    store = resources.files("sigstore") / "_store" / BUILTIN_ROOTS[name] / "trusted_root.json"
    return Path(str(store))


def _with_proto_defaults(doc: dict[str, Any]) -> dict[str, Any]:
    """Fill the fields proto3 JSON may omit but sigstore-python's strict model requires.

    sigstore-go and private deployments write roots without empty lists, without a CA
    subject's commonName or without a TSA's validity window; absence means "empty" in proto3.
    """
    for key in ("tlogs", "certificateAuthorities", "ctlogs", "timestampAuthorities"):
        doc.setdefault(key, [])
    for key in ("certificateAuthorities", "timestampAuthorities"):
        for authority in doc[key]:
            if isinstance(authority, dict):
                subject = authority.setdefault("subject", {})
                if isinstance(subject, dict):
                    subject.setdefault("organization", "")
                    subject.setdefault("commonName", "")
    for authority in doc["timestampAuthorities"]:
        if isinstance(authority, dict) and authority.get("validFor") is None:
            # Optional in the protobuf: a TSA without a window is trusted for every time, as
            # sigstore-go reads it. sigstore-python's model insists on a start.
            authority["validFor"] = {"start": "1970-01-01T00:00:00Z"}
    return doc


def parse_trusted_root(data: bytes | str | dict[str, Any]) -> TrustedRoot:
    """A TrustedRoot from trusted_root.json content; raises ValueError/SigstoreError if bad."""
    doc = json.loads(data) if isinstance(data, bytes | str) else json.loads(json.dumps(data))
    if not isinstance(doc, dict):
        raise ValueError("a trusted root must be a JSON object")
    inner = trustroot_v1.TrustedRoot.from_json(json.dumps(_with_proto_defaults(doc)))
    return TrustedRoot(inner)


def load_trusted_root_file(path: Path) -> TrustedRoot:
    try:
        return parse_trusted_root(path.read_bytes())
    except (OSError, ValueError, SigstoreError) as exc:
        # pydantic's ValidationError is a ValueError; its first lines say which field.
        detail = " ".join(str(exc).split("\n")[:3])
        raise TrustRootError(f"invalid trusted root {path}: {detail}") from exc


def load_trust_roots(policy_dir: Path) -> dict[str, TrustedRoot]:
    """Built-in roots first, then ``policy_dir/trust/*.json`` sorted by name (the try order)."""
    roots = {name: load_trusted_root_file(builtin_root_path(name)) for name in BUILTIN_ROOTS}
    trust_dir = policy_dir / "trust"
    if trust_dir.is_dir():
        for path in sorted(trust_dir.glob("*.json"), key=lambda p: p.stem):
            roots[path.stem] = load_trusted_root_file(path)
    return roots
