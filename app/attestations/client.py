"""The CI side of ingest: upload files to a Provenant server with retries."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

RETRY_STATUSES = {502, 503, 504}


@dataclass
class UploadReport:
    path: Path
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
            lines = [f"{self.path}: {body['created']} created, {body['existing']} existing, "
                     f"{body['rejected']} rejected"]
            lines += [f"  line {r['line']}: {r['error']['code']}: {r['error']['message']}"
                      for r in rejected]
            return "\n".join(lines)
        if self.ok:
            return f"{self.path}: {body.get('status')} {body.get('id')}"
        err = body.get("error", {})
        return f"{self.path}: rejected ({self.status_code}) {err.get('code')}: {err.get('message')}"


def upload_file(
    client: httpx.Client,
    path: Path,
    *,
    params: dict[str, str] | None = None,
    attempts: int = 5,
    backoff: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> UploadReport:
    """POST one file; retry connection errors and 5xx with exponential backoff, never 4xx."""
    data = path.read_bytes()
    content_type = "application/jsonl" if path.name.endswith(".jsonl") else "application/json"
    last_error = "no attempt made"
    for attempt in range(attempts):
        try:
            response = client.post(
                "/v1/attestations", content=data, params=params or None,
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
            sleep(backoff * (2**attempt))
    return UploadReport(path, None, None, error=f"gave up after {attempts} attempts: {last_error}")
