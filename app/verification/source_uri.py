"""Source repository URIs in one normal form, wherever they are stored or compared.

Provenance spells a repository several ways (``git+https://github.com/acme/app``, with a
trailing ``.git`` or ``/``; SLSA v0.2 ``configSource.uri`` with the ``git+`` prefix, v1 without),
policies write ``github.com/acme/app``, and people type any of these into a query. The normal
form is ``https://host/path``: no ``git+``, a scheme (https when none is given), the host in
lower case, no trailing ``.git`` or ``/``. Paths keep their case (hosts differ on that).
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def normalize_source_uri(uri: str) -> str:
    text = uri.strip()
    if text.startswith("git+"):
        text = text[len("git+") :]
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    path = parts.path.rstrip("/")
    if path.endswith(".git"):
        path = path[: -len(".git")]
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, parts.query, ""))


def stored_spellings(uri: str) -> list[str]:
    """What rows stored before the normal form was applied may hold for the same repository
    (queries match any of them, so no stored row needs rewriting)."""
    normal = normalize_source_uri(uri)
    return sorted({normal, normal + ".git", "git+" + normal, "git+" + normal + ".git"})
