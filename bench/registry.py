"""Registry pulls and fetch on miss against a local CNCF distribution registry.

1. Pushes N images (default 200), each with 2 attestations: a Sigstore bundle attached the way
   @sigstore/oci does on a registry without the referrers API (referrer manifest plus the
   ``sha256-<hex>`` index tag) and a cosign ``.att`` DSSE layer, all signed by the project's
   test Sigstore stack. Then pulls every image with the registry service (one thread, SQLite)
   and prints images/s and the share of the time spent verifying and storing (goal: at least
   half; the rest is the registry and HTTP).
2. Admission with fetch on miss, 3-image Pods of fresh images: the first admission's latency
   (p50/p99; goal p99 < 1 s against the local registry), the second admission of the same
   Pod (goal: equal to a warm lookup), and registry requests on second and later admissions
   (goal: 0).

Needs docker-registry and skopeo (deploy/e2e/install-registry-tools.sh). Loopback only; the CPU
is shared with whatever else runs: the figures are printed with their spread, not asserted.

    .venv/bin/python bench/registry.py [--images 200] [--pods 30]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from app.db import Database  # noqa: E402
from app.migrate import upgrade  # noqa: E402
from app.registry.client import RegistryClient  # noqa: E402
from app.registry.credentials import Keychain  # noqa: E402
from app.registry.service import RegistryService  # noqa: E402
from app.verification.trust import TrustStore  # noqa: E402
from tests.helpers import write_trust  # noqa: E402
from tests.registry import cosign_format as cf  # noqa: E402
from tests.registry.tools import (  # noqa: E402
    BUNDLE_V03,
    OCI_INDEX,
    OCI_MANIFEST,
    LocalRegistry,
    sha256_digest,
)
from tests.sigstore_stack import DEFAULT_IDENTITY, DEFAULT_ISSUER, SigstoreTestStack  # noqa: E402

NAME = "bench/app"


def push_image(registry: LocalRegistry, n: int) -> str:
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "n": n,
            "rootfs": {"type": "layers", "diff_ids": []},
        }
    ).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": registry.push_blob(NAME, config),
            "size": len(config),
        },
        "layers": [],
    }
    return registry.push_manifest(NAME, f"v{n}", manifest, OCI_MANIFEST)


def attach_referrer(registry: LocalRegistry, digest: str, bundle: bytes) -> None:
    """What @sigstore/oci does without the referrers API: the referrer, then the tag index."""
    empty = registry.push_blob(NAME, b"{}")
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": BUNDLE_V03,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
        "layers": [
            {
                "mediaType": BUNDLE_V03,
                "digest": registry.push_blob(NAME, bundle),
                "size": len(bundle),
            }
        ],
        "subject": {"mediaType": OCI_MANIFEST, "digest": digest, "size": 0},
    }
    body = json.dumps(manifest).encode()
    referrer = registry.push_manifest(NAME, sha256_digest(body), body, OCI_MANIFEST)
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": referrer,
                "size": len(body),
                "artifactType": BUNDLE_V03,
            }
        ],
    }
    registry.push_manifest(NAME, digest.replace(":", "-"), index, OCI_INDEX)


def seed(registry: LocalRegistry, stack: SigstoreTestStack, count: int, start: int) -> list[str]:
    digests = []
    for n in range(start, start + count):
        digest = push_image(registry, n)
        statement = cf.provenance(f"{registry.host}/{NAME}", digest)
        attach_referrer(registry, digest, stack.sign_dsse(statement).encode())
        layer = cf.attestation_layer(registry, stack, NAME, statement)
        cf.push_attestations(registry, NAME, digest, [layer])
        digests.append(digest)
    return digests


def pulls(registry: LocalRegistry, digests: list[str], db: Database, trust: TrustStore) -> None:
    client = RegistryClient(allowed="127.0.0.1,localhost")  # the local registry
    service = RegistryService(db, lambda: trust, client, Keychain())
    started = time.perf_counter()
    verifying = found = 0.0
    for digest in digests:
        result = service.pull(f"{registry.host}/{NAME}@{digest}", platforms=False)
        assert result.created == 2, result
        verifying += result.verify_seconds
        found += len(result.items)
    elapsed = time.perf_counter() - started
    print(
        f"pull + verify {len(digests)} images, {found:.0f} attestations: {elapsed:.2f}s, "
        f"{len(digests) / elapsed:.1f} images/s, {client.requests / len(digests):.1f} "
        f"registry requests per image"
    )
    print(
        f"  verification and storing: {verifying / elapsed:.0%} of the time "
        "(goal >= 50%); registry and HTTP the rest"
    )
    service.close()


def policies(host: str) -> str:
    return (
        "apiVersion: provenant.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {name: bench}\n"
        f'spec:\n  images: ["{host}/**"]\n'
        "  source: {registry: {fetchOnMiss: true, timeout: 3s}}\n"
        "  authorities:\n    - name: ci\n      keyless:\n        trustRoot: test-stack\n"
        f'        identities: [{{issuer: "{DEFAULT_ISSUER}", subject: "{DEFAULT_IDENTITY}"}}]\n'
        "  require:\n    - predicateType: https://slsa.dev/provenance/v1\n"
    )


def admissions(
    registry: LocalRegistry, digests: list[str], work: Path, stack: SigstoreTestStack
) -> None:
    from fastapi.testclient import TestClient

    from app.auth.service import create_token
    from app.main import create_app
    from app.settings import Settings
    from tests.admission.helpers import review, with_images

    url = f"sqlite:///{work / 'admission.db'}"
    upgrade(url)
    policy_dir = write_trust(work / "policies", stack)
    (policy_dir / "policies.yaml").write_text(policies(registry.host))
    settings = Settings(
        database_url=url,
        policy_dir=policy_dir,
        admission_recorder="thread",
        audit_key_file=work / "audit-key.pem",
    )
    app = create_app(settings)
    with app.state.db.session() as session:
        token = create_token(session, "bench", ["admission"])
    headers = {"Authorization": f"Bearer {token}"}
    first: list[float] = []
    second: list[float] = []
    later_requests = 0
    with TestClient(app) as client:
        counter = app.state.registry.client
        pods = [digests[i : i + 3] for i in range(0, len(digests) - 2, 3)]
        for pod in pods:
            body = review(with_images("pod", [f"{registry.host}/{NAME}@{d}" for d in pod]))
            began = time.perf_counter()
            answer = client.post("/k8s/validate", json=body, headers=headers).json()
            first.append(time.perf_counter() - began)
            assert answer["response"]["allowed"], answer
            before = counter.requests
            for _ in range(3):
                began = time.perf_counter()
                client.post("/k8s/validate", json=body, headers=headers)
                second.append(time.perf_counter() - began)
            later_requests += counter.requests - before
    print(f"admission with fetch on miss, {len(first)} 3-image Pods of fresh images:")
    print(f"  first admission  p50 {_ms(first, 50)} p99 {_ms(first, 99)} (goal p99 < 1000 ms)")
    print(f"  later admissions p50 {_ms(second, 50)} p99 {_ms(second, 99)} (a warm lookup)")
    print(f"  registry requests on second and later admissions: {later_requests} (goal 0)")


def _ms(values: list[float], percentile: int) -> str:
    ordered = sorted(values)
    index = min(len(ordered) - 1, round(percentile / 100 * (len(ordered) - 1)))
    return f"{ordered[index] * 1000:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--pods", type=int, default=30)
    args = parser.parse_args()
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request
    stack = SigstoreTestStack.get()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        registry = LocalRegistry(work / "registry").start()
        try:
            began = time.perf_counter()
            digests = seed(registry, stack, args.images + 3 * args.pods, 0)
            print(
                f"pushed {len(digests)} images with 2 attestations each in "
                f"{time.perf_counter() - began:.1f}s (setup, not measured)"
            )
            url = f"sqlite:///{work / 'pull.db'}"
            upgrade(url)
            db = Database(url)
            trust = TrustStore.load(write_trust(work / "trust", stack))
            pulls(registry, digests[: args.images], db, trust)
            db.dispose()
            admissions(registry, digests[args.images :], work, stack)
        finally:
            registry.stop()
    print("single run; the machine's CPU is shared with other work: expect +-20% between runs")


if __name__ == "__main__":
    main()
