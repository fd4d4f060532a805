"""The CI side of ingest: upload files to a Provenant server with retries."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

RETRY_STATUSES = {502, 503, 504}

# What to do about a rejection, by error code: the server says what failed, this says what next.
NEXT_STEPS = {
    "untrusted_key": "add the signer's public key (PEM) under policies/keys/ on the server "
    "(npm's registry key: see docs/ci.md), check it with `provenant policy lint policies`, "
    "then reload (POST /v1/policies:reload or SIGHUP)",
    "untrusted_root": "the certificate chains to a Sigstore instance whose trust root the server "
    "lacks: add its trusted_root.json under policies/trust/ (for GitHub's own instance, used "
    "for private repositories: `gh attestation trusted-root`), then reload",
    "subject_missing": "a message-signature bundle names no artifact: pass "
    "--subject-digest sha256:<hex> --subject-name <name>",
    "subject_mismatch": "--subject-digest must be the sha256 of the artifact that was signed",
}


@dataclass(frozen=True)
class Document:
    """One upload: a file, or one attestation bundle taken out of an npm attestations file."""

    label: str
    data: bytes
    content_type: str


def documents(path: Path) -> list[Document]:
    """The uploads a file makes. npm's ``.tgz.json`` attestations file (what `npm publish
    --provenance` puts on the registry) is a list of Sigstore bundles: each is uploaded on its
    own. Anything else is uploaded as it is and judged by the server."""
    data = path.read_bytes()
    if path.name.endswith(".jsonl"):
        return [Document(str(path), data, "application/jsonl")]
    try:
        parsed = json.loads(data)
    except ValueError:
        parsed = None
    attestations = parsed.get("attestations") if isinstance(parsed, dict) else None
    if (
        isinstance(attestations, list)
        and attestations
        and all(isinstance(a, dict) and isinstance(a.get("bundle"), dict) for a in attestations)
    ):
        return [
            Document(
                f"{path}#attestations[{i}]"
                + (f" ({a['predicateType']})" if isinstance(a.get("predicateType"), str) else ""),
                json.dumps(a["bundle"], separators=(",", ":")).encode(),
                "application/json",
            )
            for i, a in enumerate(attestations)
        ]
    return [Document(str(path), data, "application/json")]


@dataclass
class UploadReport:
    path: Path | str
    status_code: int | None
    body: dict[str, Any] | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status_code in (200, 201)

    def describe(self) -> str:
        if self.error:
            return f"{self.path}: {self.error}"
        body = self.body or {}
        if "results" in body:
            rejected = [r for r in body["results"] if r["status"] == "rejected"]
            lines = [
                f"{self.path}: {body['created']} created, {body['existing']} existing, "
                f"{body['rejected']} rejected"
            ]
            lines += [
                f"  line {r['line']}: {r['error']['code']}: {r['error']['message']}"
                for r in rejected
            ]
            return "\n".join(lines)
        if self.ok:
            return f"{self.path}: {body.get('status')} {body.get('id')}"
        err = body.get("error", {})
        line = f"{self.path}: rejected ({self.status_code}) {err.get('code')}: {err.get('message')}"
        step = NEXT_STEPS.get(str(err.get("code")))
        return f"{line}\n  next: {step}" if step else line

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": str(self.path),
            "ok": self.ok,
            "status_code": self.status_code,
            "response": self.body,
            "error": self.error,
        }


def upload_file(
    client: httpx.Client,
    path: Path,
    *,
    params: dict[str, str] | None = None,
    attempts: int = 5,
    backoff: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[str], None] | None = None,
) -> UploadReport:
    """POST one file as it is (see ``documents`` for npm files)."""
    content_type = "application/jsonl" if path.name.endswith(".jsonl") else "application/json"
    document = Document(str(path), path.read_bytes(), content_type)
    report = upload_document(
        client,
        document,
        params=params,
        attempts=attempts,
        backoff=backoff,
        sleep=sleep,
        on_retry=on_retry,
    )
    report.path = path
    return report


def upload_document(
    client: httpx.Client,
    document: Document,
    *,
    params: dict[str, str] | None = None,
    attempts: int = 5,
    backoff: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[str], None] | None = None,
) -> UploadReport:
    """POST one document; retry connection errors and 5xx with exponential backoff, never 4xx,
    telling ``on_retry`` each time why and when (CI logs otherwise show seconds of nothing)."""
    data, content_type = document.data, document.content_type
    path = document.label
    last_error = "no attempt made"
    for attempt in range(attempts):
        try:
            response = client.post(
                "/v1/attestations",
                content=data,
                params=params or None,
                headers={"Content-Type": content_type},
            )
        except httpx.TransportError as exc:
            last_error = f"connection failed: {type(exc).__name__}: {exc}"
        else:
            if response.status_code < 500 and response.status_code not in RETRY_STATUSES:
                try:
                    body = response.json()
                except ValueError:
                    body = {"error": {"code": "bad_response", "message": response.text[:200]}}
                return UploadReport(path, response.status_code, body)
            last_error = f"server error {response.status_code}: {response.text[:200]}"
        if attempt + 1 < attempts:
            delay = backoff * (2**attempt)
            if on_retry is not None:
                on_retry(
                    f"{path}: attempt {attempt + 1} of {attempts} failed ({last_error}); "
                    f"retrying in {delay:g} s"
                )
            sleep(delay)
    return UploadReport(path, None, None, error=f"gave up after {attempts} attempts: {last_error}")
