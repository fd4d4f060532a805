"""Verification summaries: what a VSA costs to accept at admission and to issue.

- accept: the policy engine judging one image by a ``vsa:`` requirement against 20 stored VSAs
  for its digest, in memory: the part admission adds on a cache miss, beside its one indexed
  query. typical: the newest VSA passes (a hub issues fresh ones), so one is judged; worst: only
  the oldest passes, so 19 are judged, rejected (level 2 < 3) and explained first.
- issue: sign a VSA statement with the ECDSA P-256 and Ed25519 keys (the evaluation before it is
  the engine's, measured by bench/evaluate.py; the database lookup by bench/admission.py).

Prints medians and p95; others sharing the CPU make single runs noisy, so compare runs taken
together.

    .venv/bin/python bench/vsa.py [-n 2000]
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from app.policy.engine import evaluate  # noqa: E402
from app.policy.facts import StoredAttestation  # noqa: E402
from app.policy.store import load_policy_set  # noqa: E402
from app.verification.facts import SignerFacts, Subject  # noqa: E402
from app.vsa.envelope import sign_statement  # noqa: E402
from app.vsa.keys import VsaKeyring  # noqa: E402
from app.vsa.summary import vsa_statement  # noqa: E402

DIGEST = hashlib.sha256(b"bench-vsa").hexdigest()
IMAGE = f"ghcr.io/acme/app@sha256:{DIGEST}"
NOW = datetime.now(UTC)
VERIFIER = "https://hub.example/vsa"
POLICY = """\
apiVersion: provenant.dev/v1alpha1
kind: ImagePolicy
metadata: {name: from-hub}
spec:
  images: ["ghcr.io/acme/**"]
  require:
    - vsa:
        verifierId: https://hub.example/vsa
        publicKey: {file: keys/hub.pub}
        minLevel: SLSA_BUILD_LEVEL_3
        resourceUri: "oci://{name}@{digest}"
        maxAge: 24h
        policyDigest: "sha256:%s"
"""


def statement(level: int, age: timedelta) -> dict[str, object]:
    return vsa_statement(
        digest=("sha256", DIGEST),
        subject_name="ghcr.io/acme/app",
        verifier_id=VERIFIER,
        time_verified=NOW - age,
        resource_uri=f"oci://ghcr.io/acme/app@sha256:{DIGEST}",
        policy_uri=f"{VERIFIER}/policies/acme",
        policy_sha256="f" * 64,
        inputs=[],
        passed=True,
        levels=[f"SLSA_BUILD_LEVEL_{level}"],
    )


def stored(pem: str, number: int, level: int) -> StoredAttestation:
    return StoredAttestation(
        id=hashlib.sha256(f"vsa-{number}".encode()).hexdigest(),
        format="dsse",
        content_kind="statement",
        predicate_type="https://slsa.dev/verification_summary/v1",
        signers=[
            SignerFacts(kind="key", key_id="k", key_algorithm="ecdsa-p256", public_key_pem=pem)
        ],
        trust_root=None,
        statement=statement(level, timedelta(minutes=number)),
        subjects=[Subject("ghcr.io/acme/app", {"sha256": DIGEST})],
        uploaded_at=NOW - timedelta(minutes=number),
    )


def percentiles(samples: list[float]) -> str:
    samples.sort()
    p95 = samples[int(len(samples) * 0.95)]
    return f"median {statistics.median(samples) * 1e6:8.1f} us   p95 {p95 * 1e6:8.1f} us"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000, help="rounds per measurement")
    rounds = parser.parse_args().n
    with tempfile.TemporaryDirectory() as work:
        directory = Path(work) / "policies"
        (directory / "keys").mkdir(parents=True)
        signer = VsaKeyring(Path(work) / "vsa").signer()
        (directory / "keys" / "hub.pub").write_text(signer.public_key_pem)
        (directory / "policy.yaml").write_text(POLICY % ("f" * 64))
        policy_set = load_policy_set(directory)
        older = [stored(signer.public_key_pem, n, 2) for n in range(1, 20)]
        for label, attestations in (
            ("typical", [stored(signer.public_key_pem, 0, 3), *older]),
            ("worst", [*older, stored(signer.public_key_pem, 30, 3)]),
        ):

            def lookup(
                algorithm: str, hex_: str, found: list[StoredAttestation] = attestations
            ) -> list[StoredAttestation]:
                return found if hex_ == DIGEST else []

            assert evaluate(IMAGE, "prod", policy_set, lookup, NOW).allowed
            times = []
            for _ in range(rounds):
                start = time.perf_counter()
                evaluate(IMAGE, "prod", policy_set, lookup, NOW)
                times.append(time.perf_counter() - start)
            print(f"accept ({label:7}): vsa: requirement, 20 VSAs  {percentiles(times)}")
        for algorithm in ("ecdsa-p256", "ed25519"):
            key = VsaKeyring(Path(work) / algorithm, algorithm).signer()
            body = statement(3, timedelta(0))
            times = []
            for _ in range(max(rounds // 4, 1)):
                start = time.perf_counter()
                sign_statement(body, key)
                times.append(time.perf_counter() - start)
            print(f"issue: sign a VSA ({algorithm:10})             {percentiles(times)}")


if __name__ == "__main__":
    main()
