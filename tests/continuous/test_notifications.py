"""Notifications of transitions, to real HTTP receivers on 127.0.0.1: CloudEvents 1.0 structured
JSON and Slack-compatible messages, signed (Standard Webhooks HMAC), retried with backoff, and
the delivery log answering by API. On SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.continuous.notify import Endpoint, backoff, sign
from tests.admission.conftest import upload
from tests.continuous.conftest import Watcher
from tests.continuous.helpers import Receiver, image, pod
from tests.sigstore_stack import SigstoreTestStack

SECRET = "s3cret-for-the-security-team"


@pytest.fixture
def flaky() -> Iterator[Receiver]:
    with Receiver(fail=1) as receiver:
        yield receiver


@pytest.fixture
def chat() -> Iterator[Receiver]:
    with Receiver() as receiver:
        yield receiver


@pytest.fixture
def endpoints(flaky: Receiver, chat: Receiver) -> list[Endpoint]:
    return [
        Endpoint(name="security", url=flaky.url, secret=SECRET),
        Endpoint(
            name="chat",
            url=chat.url,
            format="slack",
            secret="whsec_" + base64.b64encode(b"0123456789abcdef").decode(),
        ),
    ]


def test_a_violation_is_announced_signed_retried_and_logged(
    client: TestClient,
    watcher: Watcher,
    stack: SigstoreTestStack,
    uploader: dict[str, str],
    reader: dict[str, str],
    flaky: Receiver,
    chat: Receiver,
) -> None:
    upload(client, stack, uploader, image("signed"))
    watcher.run(pod("web", image("signed")), pod("rogue", image("unsigned")))
    assert watcher.step() == 2
    # The compliant newcomer is audited but not announced: only the violation is.
    watcher.notifier.deliver_due()
    assert flaky.received == []  # answered 500 the first time
    assert len(chat.received) == 1

    time.sleep(backoff(1).total_seconds() + 0.1)
    watcher.notifier.deliver_due()
    assert len(flaky.received) == 1
    headers, body = flaky.received[0]
    assert headers["content-type"] == "application/cloudevents+json"
    expected = sign(SECRET.encode(), headers["webhook-id"], int(headers["webhook-timestamp"]), body)
    assert headers["webhook-signature"] == expected
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    mac = hmac.new(SECRET.encode(), signed, hashlib.sha256).digest()
    assert headers["webhook-signature"] == "v1," + base64.b64encode(mac).decode()

    event = flaky.events()[0]
    assert event["specversion"] == "1.0"
    assert event["type"] == "dev.provenant.finding.changed"
    assert event["id"] == headers["webhook-id"]
    assert event["source"] == "provenant.dev/continuous/test"
    assert event["subject"] == "apps/Pod/rogue/app"
    assert (event["data"]["from"], event["data"]["to"]) == (None, "violating")
    assert event["data"]["image"] == image("unsigned")

    slack_headers, _ = chat.received[0]
    assert slack_headers["content-type"] == "application/json"
    message = chat.events()[0]
    assert set(message) == {"text"}
    assert "apps/Pod/rogue container app: new -> violating" in message["text"]
    mac = hmac.new(
        b"0123456789abcdef",
        f"{slack_headers['webhook-id']}.{slack_headers['webhook-timestamp']}.".encode()
        + chat.received[0][1],
        hashlib.sha256,
    ).digest()
    assert slack_headers["webhook-signature"] == "v1," + base64.b64encode(mac).decode()

    response = client.get("/v1/notifications/deliveries", headers=reader)
    assert response.status_code == 200, response.text
    log = {d["endpoint"]: d for d in response.json()["items"]}
    assert (log["security"]["status"], log["security"]["attempts"]) == ("delivered", 2)
    assert log["security"]["last_status_code"] == 204
    assert (log["chat"]["status"], log["chat"]["attempts"]) == ("delivered", 1)
    only = client.get(
        "/v1/notifications/deliveries", params={"endpoint": "chat"}, headers=reader
    ).json()["items"]
    assert [d["endpoint"] for d in only] == ["chat"]


def test_an_unreachable_endpoint_never_holds_up_evaluation(
    client: TestClient, watcher: Watcher, reader: dict[str, str]
) -> None:
    watcher.notifier.endpoints = []  # not this test's subject
    watcher.store.endpoints = [Endpoint(name="dead", url="http://127.0.0.1:9/hook", secret=SECRET)]
    watcher.run(pod("rogue", image("unsigned")))
    started = time.perf_counter()
    assert watcher.step() == 1  # the delivery is only written here
    assert time.perf_counter() - started < 5
    pending = client.get(
        "/v1/notifications/deliveries", params={"status": "pending"}, headers=reader
    ).json()["items"]
    assert [d["endpoint"] for d in pending] == ["dead"]


def test_endpoint_configuration_is_checked() -> None:
    with pytest.raises(ValueError, match="exactly one of"):
        Endpoint(name="x", url="https://example.com/", secret=SECRET, secretEnv="X")
    with pytest.raises(ValueError):
        Endpoint(name="x", url="ftp://example.com/", secret=SECRET)
