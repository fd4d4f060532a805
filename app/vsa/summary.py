"""The VSA v1 Statement Provenant signs (https://slsa.dev/spec/v1.0/verification_summary)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import rfc8785

from app import __version__
from app.policy.loader import CompiledPolicy
from app.policy.schema import ImagePolicy

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
VSA_PREDICATE_TYPE = "https://slsa.dev/verification_summary/v1"
SLSA_VERSION = "1.0"


def policy_digest(policy: CompiledPolicy) -> str:
    return document_digest(policy.source)


def document_digest(document: ImagePolicy) -> str:
    """sha256 hex of the policy document as loaded: its RFC 8785 JSON, with the fields the
    document sets (defaults a later Provenant may change are left out, comments and YAML
    layout do not count). ``provenant vsa policy-digest`` prints it for a policy file."""
    data = document.model_dump(mode="json", exclude_unset=True)
    return hashlib.sha256(rfc8785.dumps(data)).hexdigest()


@dataclass(frozen=True)
class InputAttestation:
    uri: str
    sha256: str

    def as_dict(self) -> dict[str, Any]:
        return {"uri": self.uri, "digest": {"sha256": self.sha256}}


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def vsa_statement(
    *,
    digest: tuple[str, str],
    subject_name: str,
    verifier_id: str,
    time_verified: datetime,
    resource_uri: str,
    policy_uri: str,
    policy_sha256: str,
    inputs: list[InputAttestation],
    passed: bool,
    levels: list[str],
) -> dict[str, Any]:
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": subject_name, "digest": {digest[0]: digest[1]}}],
        "predicateType": VSA_PREDICATE_TYPE,
        "predicate": {
            "verifier": {"id": verifier_id, "version": {"provenant": __version__}},
            "timeVerified": rfc3339(time_verified),
            "resourceUri": resource_uri,
            "policy": {"uri": policy_uri, "digest": {"sha256": policy_sha256}},
            "inputAttestations": [i.as_dict() for i in inputs],
            "verificationResult": "PASSED" if passed else "FAILED",
            "verifiedLevels": levels,
            "slsaVersion": SLSA_VERSION,
        },
    }
