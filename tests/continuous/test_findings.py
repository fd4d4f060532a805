"""Findings over SQLite and PostgreSQL: each running image judged by the admission engine, every
transition an audit event, re-judged when an attestation is revoked, the policy set tightens or
an exemption runs out; the findings and workloads API, the CLI's source, the gauges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from app.audit.models import AuditEvent
from app.continuous.evaluate import Judgement
from app.continuous.findings import FindingStore
from app.continuous.inventory import FindingKey
from tests.admission.conftest import POLICIES, upload
from tests.continuous.conftest import Watcher
from tests.continuous.helpers import REPOSITORY, digest, image, pod
from tests.sigstore_stack import SigstoreTestStack


def findings(client: TestClient, headers: dict[str, str], **params: str) -> list[dict[str, Any]]:
    response = client.get("/v1/findings", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]


def by_workload(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f"{i['workload']['kind']}/{i['workload']['name']}": i for i in items}


def transitions(client: TestClient) -> list[dict[str, Any]]:
    with client.app.state.db.session() as session:  # type: ignore[attr-defined]
        rows = session.scalars(
            select(AuditEvent).where(AuditEvent.type == "finding.changed").order_by(AuditEvent.seq)
        )
        return [row.payload for row in rows]


def test_running_images_are_judged_by_the_admission_engine(
    client: TestClient,
    watcher: Watcher,
    stack: SigstoreTestStack,
    uploader: dict[str, str],
    reader: dict[str, str],
) -> None:
    upload(client, stack, uploader, image("signed"))
    watcher.run(
        # A tag-only spec whose pulled digest is attested: judged by what runs.
        pod(
            "web-5d8f-a",
            f"{REPOSITORY}:v1",
            image_id=f"docker-pullable://{image('signed')}",
            owner=("ReplicaSet", "web-5d8f"),
        ),
        pod(
            "web-5d8f-b",
            f"{REPOSITORY}:v1",
            image_id=f"docker-pullable://{image('signed')}",
            owner=("ReplicaSet", "web-5d8f"),
        ),
        pod("rogue", image("unsigned")),
        pod("pinless", f"{REPOSITORY}:latest"),
        pod("system", image("unsigned"), namespace="kube-system"),
    )
    assert watcher.step() == 4

    items = by_workload(findings(client, reader))
    assert items["Deployment/web"]["status"] == "compliant"
    assert items["Deployment/web"]["pods"] == 2
    assert items["Deployment/web"]["image"] == image("signed")
    assert items["Deployment/web"]["policies"] == ["acme-release"]
    assert items["Pod/rogue"]["status"] == "violating"
    assert items["Pod/rogue"]["policies"] == ["acme-release"]
    assert "denied by policy acme-release" in items["Pod/rogue"]["reasons"][0]
    assert items["Pod/pinless"]["status"] == "violating"
    assert "has no digest" in items["Pod/pinless"]["reasons"][0]
    system = findings(client, reader, namespace="kube-system")
    assert [i["status"] for i in system] == ["exempt"]

    assert [
        i["workload"]["name"]
        for i in findings(client, reader, status="violating", policy="acme-release")
    ] == ["rogue"]
    # Every finding's first state is a transition, audited.
    assert sorted((t["from"], t["to"]) for t in transitions(client)) == [
        (None, "compliant"),
        (None, "exempt"),
        (None, "violating"),
        (None, "violating"),
    ]
    # Nothing changed, nothing written.
    watcher.evaluator.full("test")
    assert watcher.step() == 0


def test_a_revocation_answers_with_the_running_workloads_it_affects_and_turns_them_violating(
    client: TestClient,
    watcher: Watcher,
    stack: SigstoreTestStack,
    uploader: dict[str, str],
    reader: dict[str, str],
    tokens: Any,
) -> None:
    attestation_id = upload(client, stack, uploader, image("signed"))
    watcher.run(
        pod("web-5d8f-a", image("signed"), owner=("ReplicaSet", "web-5d8f")),
        pod("other", image("other")),
    )
    watcher.step()
    before = by_workload(findings(client, reader))["Deployment/web"]
    assert before["status"] == "compliant"

    admin = tokens("admin", name="security")
    response = client.post(
        f"/v1/attestations/{attestation_id}/revoke", json={"reason": "key leaked"}, headers=admin
    )
    assert response.status_code == 200, response.text
    affected = response.json()["affected_workloads"]
    assert [(w["kind"], w["name"], w["image"]) for w in affected] == [
        ("Deployment", "web", image("signed"))
    ]

    # Seen through the index version (any process's revocation), evaluated incrementally: the
    # other workload is not looked at.
    judged = watcher.evaluator.stats.keys_judged
    watcher.clock.advance(seconds=1)
    assert watcher.step() == 1
    assert watcher.evaluator.stats.keys_judged == judged + 1
    after = by_workload(findings(client, reader))["Deployment/web"]
    assert after["status"] == "violating"
    assert after["since"] != before["since"]
    assert transitions(client)[-1] | {"at": None} == transitions(client)[-1] | {
        "at": None,
        "from": "compliant",
        "to": "violating",
        "subject": "apps/Deployment/web/app",
    }


def test_a_stricter_policy_reload_re_judges_everything(
    client: TestClient,
    watcher: Watcher,
    stack: SigstoreTestStack,
    uploader: dict[str, str],
    reader: dict[str, str],
    policy_dir: Path,
) -> None:
    upload(client, stack, uploader, image("signed"))
    watcher.run(pod("web", image("signed")))
    watcher.step()
    assert findings(client, reader)[0]["status"] == "compliant"

    stricter = POLICIES.replace(
        "      predicateType: https://slsa.dev/provenance/v1\n",
        "      predicateType: https://slsa.dev/provenance/v1\n"
        "      conditions:\n"
        "        - message: built from the monorepo\n"
        "          expression: 'predicate.buildDefinition.externalParameters.workflow.repository == \"https://github.com/acme/monorepo\"'\n",
        1,
    )
    (policy_dir / "policies.yaml").write_text(stricter)
    client.app.state.policies.reload()  # type: ignore[attr-defined]
    assert watcher.step() == 1
    finding = findings(client, reader)[0]
    assert finding["status"] == "violating"
    assert finding["policy_hash"] == client.app.state.policies.active.content_hash  # type: ignore[attr-defined]


def test_an_exemption_warns_inside_its_window_and_stops_at_its_expiry(
    client: TestClient, watcher: Watcher, reader: dict[str, str], policy_dir: Path
) -> None:
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    exempting = POLICIES.replace(
        'images: ["registry.k8s.io/pause*"]', f'images: ["{REPOSITORY}"]'
    ).replace(
        POLICIES.split("expires: ")[1].split("\n")[0], expires.isoformat().replace("+00:00", "Z")
    )
    (policy_dir / "policies.yaml").write_text(exempting)
    client.app.state.policies.reload()  # type: ignore[attr-defined]
    watcher.run(pod("legacy", f"{REPOSITORY}:v1"))
    watcher.step()
    assert [(f["status"], f["expiring"]) for f in findings(client, reader)] == [("exempt", False)]

    watcher.clock.advance(days=17)  # inside the 14-day warning window
    assert watcher.step() == 1
    finding = findings(client, reader)[0]
    assert (finding["status"], finding["expiring"]) == ("exempt", True)
    assert "the exemption expires at" in finding["reasons"][-1]

    watcher.clock.advance(days=14)  # past the expiry
    assert watcher.step() == 1
    finding = findings(client, reader)[0]
    assert finding["status"] == "violating"
    assert "expired" in finding["reasons"][0]
    assert [(t["from"], t["to"], t["expiring"]) for t in transitions(client)] == [
        (None, "exempt", False),
        ("exempt", "exempt", True),
        ("exempt", "violating", False),
    ]


def test_a_workload_that_stops_running_leaves_the_findings(
    client: TestClient, watcher: Watcher, reader: dict[str, str]
) -> None:
    watcher.run(pod("rogue", image("unsigned")))
    watcher.step()
    watcher.delete("uid-rogue")
    assert watcher.step() == 1
    assert findings(client, reader) == []
    assert transitions(client)[-1]["to"] == "gone"


def test_workloads_by_image_and_the_violating_gauge(
    client: TestClient,
    watcher: Watcher,
    stack: SigstoreTestStack,
    uploader: dict[str, str],
    reader: dict[str, str],
) -> None:
    upload(client, stack, uploader, image("signed"))
    watcher.run(
        pod("web", image("signed")),
        pod("rogue", image("unsigned")),
        pod("db", "docker.io/library/postgres:16", namespace="data"),
    )
    watcher.step()

    def workloads(**params: str) -> list[tuple[str, str]]:
        response = client.get("/v1/workloads", params=params, headers=reader)
        assert response.status_code == 200, response.text
        return [(w["name"], w["status"]) for w in response.json()["items"]]

    assert workloads(image=REPOSITORY) == [("rogue", "violating"), ("web", "compliant")]
    assert workloads(image=f"sha256:{digest('signed')}") == [("web", "compliant")]
    assert workloads(namespace="data") == [("db", "violating")]
    bad = client.get("/v1/workloads", params={"image": "UPPER//case"}, headers=reader)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_parameter"
    assert client.get(
        "/v1/findings", params={"status": "nonsense"}, headers=reader
    ).status_code in (400, 422)

    metrics = client.get("/metrics").text
    assert (
        'provenant_continuous_violating_workloads{namespace="apps",policy="acme-release"} 1.0'
        in metrics
    )
    assert 'provenant_continuous_violating_workloads{namespace="data",policy=""} 1.0' in metrics


def test_two_clusters_running_the_same_workload_keep_their_own_findings(
    client: TestClient, reader: dict[str, str]
) -> None:
    db = client.app.state.db  # type: ignore[attr-defined]
    key = FindingKey("apps", "Deployment", "web", "app", image("signed"))
    now = datetime.now(UTC)
    for cluster, status in (("eu", "compliant"), ("us", "violating")):
        store = FindingStore(db, cluster)
        store.load()
        judged = {key: Judgement(status, ("acme-release",), ("why",), None)}
        assert len(store.apply(judged, {key: 1}, [], now)) == 1
    assert sorted((f["cluster"], f["status"]) for f in findings(client, reader)) == [
        ("eu", "compliant"),
        ("us", "violating"),
    ]


def test_an_attestation_uploaded_later_turns_the_running_image_compliant(
    client: TestClient,
    watcher: Watcher,
    stack: SigstoreTestStack,
    uploader: dict[str, str],
    reader: dict[str, str],
) -> None:
    """The stale-report complaint about background scanners: a signature added after the Pod
    started must update its finding, without waiting for a scheduled scan."""
    watcher.run(pod("late", image("late")), pod("other", image("other")))
    watcher.step()
    assert by_workload(findings(client, reader))["Pod/late"]["status"] == "violating"
    upload(client, stack, uploader, image("late"))
    judged = watcher.evaluator.stats.keys_judged
    watcher.clock.advance(seconds=1)
    assert watcher.step() == 1
    assert watcher.evaluator.stats.keys_judged == judged + 1  # only the digest it names
    assert by_workload(findings(client, reader))["Pod/late"]["status"] == "compliant"


def test_a_standalone_watcher_sees_policy_and_trust_root_edits_by_their_files(
    client: TestClient, watcher: Watcher, reader: dict[str, str], policy_dir: Path
) -> None:
    """`provenant watch` has no reload API: it reloads when the directory's hash changes, and a
    trust root lives there too."""
    watcher.evaluator.options.policy_poll = 0.0
    watcher.run(pod("rogue", image("unsigned")))
    watcher.step()
    # Admit everything from the repository through an exemption, written to the file only.
    exempting = POLICIES.replace('images: ["registry.k8s.io/pause*"]', f'images: ["{REPOSITORY}"]')
    (policy_dir / "policies.yaml").write_text(exempting)
    assert watcher.step() == 1
    assert findings(client, reader)[0]["status"] == "exempt"
    # A trust root removed: the release key's policy no longer loads, the last good set stays,
    # and nothing changes; restoring the key reloads again.
    key = (policy_dir / "keys" / "release.pub").read_bytes()
    (policy_dir / "keys" / "release.pub").unlink()
    assert watcher.step() == 0
    assert client.app.state.policies.last_error is not None  # type: ignore[attr-defined]
    (policy_dir / "keys" / "release.pub").write_bytes(key)
    (policy_dir / "policies.yaml").write_text(POLICIES)
    assert watcher.step() == 1
    assert findings(client, reader)[0]["status"] == "violating"
