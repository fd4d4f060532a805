"""Notifications of finding transitions: CloudEvents 1.0 (structured JSON) or a Slack-compatible
message, POSTed to configured endpoints, signed per endpoint, retried with backoff.

The delivery log is an outbox: rows are inserted in the transaction that records a transition
(``delivery_rows``) and sent afterwards by ``Notifier``, a thread of its own, so a slow or dead
receiver never holds up evaluation, and nothing is lost if the process stops in between.

Signatures follow the Standard Webhooks scheme: ``webhook-id``, ``webhook-timestamp`` and
``webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``; the timestamp
lets receivers refuse replays. A secret written ``whsec_<base64>`` is used decoded, any other
secret as its UTF-8 bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import httpx
import orjson
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select, update

from app.continuous.models import Delivery
from app.db import Database

log = logging.getLogger("provenant.continuous")

EVENT_TYPE = "dev.provenant.finding.changed"
CLOUDEVENTS_TYPE = "application/cloudevents+json"
MAX_ATTEMPTS = 8
MAX_BACKOFF = timedelta(minutes=5)
_TIMEOUT = httpx.Timeout(10.0)


class Endpoint(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(min_length=1, max_length=253)
    url: str = Field(pattern=r"^https?://")
    format: Literal["cloudevents", "slack"] = "cloudevents"
    secret: str | None = Field(default=None, min_length=16)
    secret_env: str | None = Field(default=None, alias="secretEnv")
    secret_file: Path | None = Field(default=None, alias="secretFile")
    # A transition is sent when its old or new status is one of these.
    statuses: list[Literal["compliant", "violating", "error", "exempt", "gone"]] = Field(
        default_factory=lambda: ["violating", "error"]
    )
    expiring: bool = True  # also send exemptions entering their warning window

    @model_validator(mode="after")
    def _one_secret(self) -> Endpoint:
        given = [s for s in (self.secret, self.secret_env, self.secret_file) if s is not None]
        if len(given) != 1:
            raise ValueError(
                f"endpoint {self.name}: give exactly one of secret, secretEnv, secretFile"
            )
        return self

    def key(self) -> bytes:
        if self.secret_env is not None:
            value = os.environ.get(self.secret_env)
            if not value:
                raise ValueError(f"endpoint {self.name}: ${self.secret_env} is not set")
        elif self.secret_file is not None:
            value = self.secret_file.read_text().strip()
        else:
            value = self.secret or ""
        if value.startswith("whsec_"):
            return base64.b64decode(value.removeprefix("whsec_"))
        return value.encode()

    def wants(self, transition: dict[str, Any]) -> bool:
        if transition.get("expiring_changed") and self.expiring and transition.get("expiring"):
            return True
        return transition["from"] in self.statuses or transition["to"] in self.statuses


class NotificationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    endpoints: list[Endpoint] = Field(default_factory=list, max_length=100)


def load_endpoints(path: Path | None) -> list[Endpoint]:
    if path is None:
        return []
    if not path.exists():
        # deploy/continuous mounts an optional Secret here: absent means none configured.
        log.warning("notifications: %s does not exist; no endpoints configured", path)
        return []
    config = NotificationConfig.model_validate(yaml.safe_load(path.read_text()) or {})
    names = [e.name for e in config.endpoints]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: endpoint names must be unique")
    for endpoint in config.endpoints:
        endpoint.key()  # a missing secret fails at start, not at the first transition
    return config.endpoints


def cloud_event(
    transition: dict[str, Any], source: str, event_id: str, at: datetime
) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": source,
        "type": EVENT_TYPE,
        "subject": transition["subject"],
        "time": at.isoformat().replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        "data": transition,
    }


def delivery_rows(
    transitions: Sequence[dict[str, Any]], endpoints: Sequence[Endpoint], source: str, now: datetime
) -> list[dict[str, Any]]:
    rows = []
    for transition in transitions:
        for endpoint in endpoints:
            if not endpoint.wants(transition):
                continue
            event_id = str(uuid.uuid4())
            rows.append(
                {
                    "id": event_id,
                    "endpoint": endpoint.name,
                    "event_type": EVENT_TYPE,
                    "subject": transition["subject"],
                    "event": cloud_event(transition, source, event_id, now),
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
            )
    return rows


def slack_message(event: dict[str, Any]) -> dict[str, Any]:
    data = event["data"]
    workload = data["workload"]
    head = (
        f"{data['namespace']}/{workload['kind']}/{workload['name']} container {data['container']}: "
        f"{data['from'] or 'new'} -> {data['to']}"
    )
    reasons = "\n".join(f"• {r}" for r in data.get("reasons", [])[:5])
    return {"text": f"Provenant: {head}\nimage {data['image']}\n{reasons}".rstrip()}


def render(endpoint: Endpoint, event: dict[str, Any]) -> tuple[bytes, str]:
    if endpoint.format == "slack":
        return orjson.dumps(slack_message(event)), "application/json"
    return orjson.dumps(event), CLOUDEVENTS_TYPE


def sign(key: bytes, event_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{event_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def backoff(attempts: int) -> timedelta:
    return min(timedelta(seconds=2 ** (attempts - 1)), MAX_BACKOFF)


@dataclass
class Notifier:
    """Sends due deliveries, oldest first; wakes when told new ones were written."""

    db: Database
    endpoints: Sequence[Endpoint]
    batch: int = 50

    def __post_init__(self) -> None:
        self.wake = threading.Event()
        self._by_name = {e.name: e for e in self.endpoints}
        self._client = httpx.Client(timeout=_TIMEOUT, follow_redirects=False)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                more = self.deliver_due()
            except Exception:
                log.exception("notifications: delivery round failed")
                more = False
            if not more:
                self.wake.wait(1.0)
                self.wake.clear()

    def deliver_due(self) -> bool:
        """One round; True when more are due right away."""
        now = datetime.now(UTC)
        with self.db.session() as session:
            due = session.execute(
                select(Delivery.id, Delivery.endpoint, Delivery.event, Delivery.attempts)
                .where(Delivery.status == "pending", Delivery.next_attempt_at <= now)
                .order_by(Delivery.next_attempt_at, Delivery.created_at)
                .limit(self.batch)
            ).all()
        for delivery_id, name, event, attempts in due:
            self._send(delivery_id, self._by_name.get(name), event, attempts + 1)
        return len(due) == self.batch

    def _send(
        self, delivery_id: str, endpoint: Endpoint | None, event: dict[str, Any], attempt: int
    ) -> None:
        code: int | None = None
        error: str | None = None
        if endpoint is None:
            error = "endpoint no longer configured"
        else:
            body, content_type = render(endpoint, event)
            timestamp = int(datetime.now(UTC).timestamp())
            headers = {
                "content-type": content_type,
                "webhook-id": delivery_id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": sign(endpoint.key(), delivery_id, timestamp, body),
            }
            try:
                response = self._client.post(endpoint.url, content=body, headers=headers)
                code = response.status_code
                if not 200 <= code < 300:
                    error = f"HTTP {code}: {response.text[:200]}"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"[:500]
        now = datetime.now(UTC)
        values: dict[str, Any] = {
            "attempts": attempt,
            "last_status_code": code,
            "last_error": error,
        }
        if error is None:
            values |= {"status": "delivered", "delivered_at": now}
        elif endpoint is None or attempt >= MAX_ATTEMPTS:
            values |= {"status": "failed"}
        else:
            values |= {"next_attempt_at": now + backoff(attempt)}
        with self.db.session() as session:
            session.execute(update(Delivery).where(Delivery.id == delivery_id).values(**values))
        if error is not None:
            log.info(
                "notification %s to %s: attempt %d failed: %s",
                delivery_id,
                endpoint and endpoint.name,
                attempt,
                error,
            )

    def close(self) -> None:
        self._client.close()
