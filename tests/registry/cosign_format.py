"""cosign's .sig and .att manifests, built from bundles the project's Sigstore test stack signs.

No cosign binary is available here, so the manifests are written field by field from cosign's
published specification; each field says which document it comes from:

* [SIG] https://github.com/sigstore/cosign/blob/main/specs/SIGNATURE_SPEC.md
* [ATT] https://github.com/sigstore/cosign/blob/main/specs/ATTESTATION_SPEC.md
* [SS]  https://github.com/containers/image/blob/main/docs/containers-signature.5.md
        (the "simple signing" payload format cosign's [SIG] refers to)
* [REKOR] cosign's ``bundle.RekorBundle`` (pkg/cosign/bundle/rekor.go): the JSON of the
        ``dev.sigstore.cosign/bundle`` annotation
"""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.registry.tools import LocalRegistry
from tests.sigstore_stack import SigstoreTestStack

SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"  # [SIG] layer mediaType
DSSE = "application/vnd.dsse.envelope.v1+json"  # [ATT] layer mediaType
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def simple_signing_payload(reference: str, digest: str) -> bytes:
    # [SS] "critical": identity.docker-reference, image.docker-manifest-digest, type;
    # "optional" may carry anything ([SIG]: annotations given with cosign sign -a).
    return json.dumps(
        {
            "critical": {
                "identity": {"docker-reference": reference},
                "image": {"docker-manifest-digest": digest},
                "type": "cosign container image signature",
            },
            "optional": None,
        }
    ).encode()


def _certificate_pem(bundle: dict[str, Any]) -> str:
    raw = base64.b64decode(bundle["verificationMaterial"]["certificate"]["rawBytes"])
    cert = x509.load_der_x509_certificate(raw)
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _rekor_annotation(bundle: dict[str, Any]) -> str:
    # [REKOR] {"SignedEntryTimestamp": base64 SET, "Payload": {"body": base64 canonicalized
    # entry, "integratedTime": int, "logIndex": int, "logID": hex log id}}
    entry = bundle["verificationMaterial"]["tlogEntries"][0]
    return json.dumps(
        {
            "SignedEntryTimestamp": entry["inclusionPromise"]["signedEntryTimestamp"],
            "Payload": {
                "body": entry["canonicalizedBody"],
                "integratedTime": int(entry["integratedTime"]),
                "logIndex": int(entry["logIndex"]),
                "logID": base64.b64decode(entry["logId"]["keyId"]).hex(),
            },
        }
    )


def _manifest(registry: LocalRegistry, repository: str, layers: list[dict[str, Any]]) -> dict:
    # [SIG] an OCI image manifest whose config is a minimal image config and whose layers are
    # the signatures (one per signer), each with its annotations.
    config = json.dumps(
        {
            "architecture": "",
            "os": "",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [layer["digest"] for layer in layers]},
        }
    ).encode()
    config_digest = registry.push_blob(repository, config)
    return {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "size": len(config),
            "digest": config_digest,
        },
        "layers": layers,
    }


def signature_layer(
    registry: LocalRegistry,
    stack: SigstoreTestStack,
    repository: str,
    payload: bytes,
    *,
    tamper: str | None = None,
    with_timestamp: bool = False,
    key: Any = None,
) -> dict[str, Any]:
    """One .sig layer: the payload blob, signed keyless (hashedrekord entry with a SET), or
    with ``key`` as ``cosign sign --key`` does (no certificate annotation)."""
    if key is not None:
        signed = stack.sign_artifact_with_key(payload, key, tamper=tamper)
    else:
        signed = stack.sign_artifact(payload, tamper=tamper, with_timestamp=with_timestamp)
    bundle = json.loads(signed)
    digest = registry.push_blob(repository, payload)
    annotations = {
        # [SIG] base64 signature over the payload bytes
        "dev.cosignproject.cosign/signature": bundle["messageSignature"]["signature"],
        # [SIG] the Rekor bundle (SET)
        "dev.sigstore.cosign/bundle": _rekor_annotation(bundle),
    }
    if key is None:
        # [SIG] keyless: the Fulcio certificate (PEM) and its chain
        annotations["dev.sigstore.cosign/certificate"] = _certificate_pem(bundle)
        annotations["dev.sigstore.cosign/chain"] = ""
    stamps = bundle["verificationMaterial"].get("timestampVerificationData")
    if stamps:
        # [SIG] "dev.sigstore.cosign/rfc3161timestamp": {"SignedRFC3161Timestamp": base64 DER}
        token = stamps["rfc3161Timestamps"][0]["signedTimestamp"]
        annotations["dev.sigstore.cosign/rfc3161timestamp"] = json.dumps(
            {"SignedRFC3161Timestamp": token}
        )
    return {
        "mediaType": SIMPLE_SIGNING,
        "size": len(payload),
        "digest": digest,
        "annotations": annotations,
    }


def attestation_layer(
    registry: LocalRegistry,
    stack: SigstoreTestStack,
    repository: str,
    statement: dict[str, Any],
) -> dict[str, Any]:
    """One .att layer: a DSSE envelope (keyless; the Rekor entry and SET in annotations)."""
    bundle = json.loads(stack.sign_dsse(statement))
    envelope = json.dumps(bundle["dsseEnvelope"]).encode()
    digest = registry.push_blob(repository, envelope)
    return {
        "mediaType": DSSE,
        "size": len(envelope),
        "digest": digest,
        "annotations": {
            "dev.sigstore.cosign/certificate": _certificate_pem(bundle),  # [ATT] as [SIG]
            "dev.sigstore.cosign/chain": "",
            "dev.sigstore.cosign/bundle": _rekor_annotation(bundle),
            "predicateType": statement["predicateType"],  # [ATT] layer annotation
        },
    }


def key_attestation_layer(
    registry: LocalRegistry,
    stack: SigstoreTestStack,
    repository: str,
    statement: dict[str, Any],
    key: Any,
) -> dict[str, Any]:
    """An .att layer of ``cosign attest --key``: the envelope signed with the key; no
    certificate annotation ([ATT])."""
    envelope = stack.sign_bare_dsse(statement, key).encode()
    digest = registry.push_blob(repository, envelope)
    return {
        "mediaType": DSSE,
        "size": len(envelope),
        "digest": digest,
        "annotations": {"predicateType": statement["predicateType"]},
    }


def push_signatures(
    registry: LocalRegistry, repository: str, digest: str, layers: list[dict[str, Any]]
) -> str:
    # [SIG] tag: the image digest with ":" replaced by "-", plus ".sig"
    tag = digest.replace(":", "-") + ".sig"
    return registry.push_manifest(
        repository, tag, _manifest(registry, repository, layers), OCI_MANIFEST
    )


def push_attestations(
    registry: LocalRegistry, repository: str, digest: str, layers: list[dict[str, Any]]
) -> str:
    # [ATT] tag: the image digest with ":" replaced by "-", plus ".att"
    tag = digest.replace(":", "-") + ".att"
    return registry.push_manifest(
        repository, tag, _manifest(registry, repository, layers), OCI_MANIFEST
    )


def provenance(name: str, digest: str) -> dict[str, Any]:
    """A SLSA v1 provenance Statement about ``digest``."""
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": name, "digest": {"sha256": digest.split(":")[1]}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": "https://actions.github.io/buildtypes/workflow/v1",
                "externalParameters": {
                    "workflow": {
                        "ref": "refs/heads/main",
                        "repository": "https://github.com/acme/app",
                        "path": ".github/workflows/build.yml",
                    }
                },
                "resolvedDependencies": [],
            },
            "runDetails": {"builder": {"id": "https://github.com/actions/runner"}, "metadata": {}},
        },
    }
