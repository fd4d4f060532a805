"""Page cursors for lists ordered by (time, id): opaque to clients, the last row's position
underneath. One format for every such list, so a cursor reads the same wherever it is issued."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime


def encode_time_cursor(at: datetime, last_id: str) -> str:
    return base64.urlsafe_b64encode(f"{_utc(at).isoformat()}|{last_id}".encode()).decode()


def decode_time_cursor(cursor: str) -> tuple[datetime, str]:
    """The position a cursor names; ValueError for anything this server did not issue."""
    try:
        at, last_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        return _utc(datetime.fromisoformat(at)), last_id
    except (ValueError, binascii.Error, UnicodeDecodeError, OverflowError) as exc:
        raise ValueError("not a cursor this server issued") from exc


def _utc(value: datetime) -> datetime:
    # Stored times are UTC; a time without an offset is taken as UTC too.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
