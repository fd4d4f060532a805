"""Response shapes of /v1/audit. Hashes are lowercase hex; checkpoints are signed-note text."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class EventOut(BaseModel):
    seq: int = Field(description="0-based position in the log; equal to the Merkle leaf index")
    time: str = Field(description="RFC 3339 UTC, microseconds: exactly the string that is hashed")
    type: str
    actor: str
    payload: dict[str, Any]
    payload_hash: str = Field(description="sha256 of the RFC 8785 JSON of the payload")
    leaf_hash: str = Field(description="RFC 6962 leaf hash of the canonical event")


class EventPage(BaseModel):
    items: list[EventOut]
    next_cursor: str | None = Field(description="pass as cursor for the next page; null at the end")


class CheckpointOut(BaseModel):
    origin: str
    tree_size: int
    root_hash: str
    note: str = Field(description="the signed checkpoint (Go signed-note format)")
    created_at: datetime


class InclusionProofOut(BaseModel):
    seq: int
    tree_size: int
    leaf_hash: str
    root_hash: str
    hashes: list[str] = Field(description="RFC 6962 audit path, bottom first")


class ConsistencyProofOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: int = Field(alias="from")
    to: int
    from_root_hash: str
    to_root_hash: str
    hashes: list[str] = Field(description="RFC 6962 consistency proof")


class BadCheckpointOut(BaseModel):
    tree_size: int
    reason: str


class VerifyOut(BaseModel):
    ok: bool
    tree_size: int = Field(description="events checked in order before stopping")
    root_hash: str | None = Field(description="recomputed root when every check passed")
    events_checked: int
    checkpoints_checked: int = Field(description="signed checkpoints whose root was reproduced")
    first_bad_seq: int | None
    reason: str | None
    bad_checkpoints: list[BadCheckpointOut]
    cache_problems: list[str]


class PublicKeyOut(BaseModel):
    algorithm: str
    origin: str
    key_hash: str = Field(description="the 4-byte note key hash, hex")
    public_key_pem: str
    verifier_key: str = Field(description="Go note verifier key: name+hash+base64(0x01||key)")
