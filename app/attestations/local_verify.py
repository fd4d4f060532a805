"""``provenant verify``: the ingest verification, run locally on a file, nothing stored."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from app.verification.errors import VerificationError
from app.verification.trust import TrustStore


def verify_file(
    path: Path, policy_dir: Path, subject_digest: str | None = None
) -> tuple[dict[str, Any], bool]:
    """A JSON-able report per document in the file, and whether all of them verified."""
    from app.verification.formats import detect_format, split_jsonl
    from app.verification.verify import verify_document

    trust = TrustStore.load(policy_dir)
    data = path.read_bytes()
    message_digest = None
    if subject_digest:
        algorithm, _, hex_ = subject_digest.partition(":")
        message_digest = (algorithm, hex_.lower())
    try:
        documents = split_jsonl(data) if detect_format(data, None) == "jsonl" else [data]
    except VerificationError as exc:
        return {"file": str(path), "error": {"code": exc.code, "message": exc.message}}, False
    results: list[dict[str, Any]] = []
    for number, document in enumerate(documents, start=1):
        try:
            verified = verify_document(document, trust, message_digest=message_digest)
        except VerificationError as exc:
            results.append(
                {
                    "document": number,
                    "verified": False,
                    "error": {"code": exc.code, "message": exc.message},
                }
            )
            continue
        facts = dataclasses.asdict(verified)
        facts.pop("statement", None)
        results.append({"document": number, "verified": True, "facts": facts})
    return {"file": str(path), "results": results}, all(r["verified"] for r in results)
