"""Pulling from a real registry (CNCF distribution 2.8): every scheme it can hold, verified by
the upload path, stored with its origin, audited with actor ``registry``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.attestations.models import Attestation
from app.audit.models import AuditEvent
from app.db import Database
from app.registry.credentials import Keychain
from app.registry.errors import RegistryError
from app.registry.models import RegistryOrigin
from app.registry.service import RegistryService
from app.verification.trust import TrustStore
from tests.helpers import write_trust
from tests.registry import cosign_format as cf
from tests.registry.conftest import make_service
from tests.registry.tools import LocalRegistry, attach_with_sigstore_oci, local_registry
from tests.sigstore_stack import SigstoreTestStack

REPO = "team/app"


def _count(db: Database, column) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count(column))) or 0)


def _events(db: Database, kind: str) -> list[AuditEvent]:
    with db.session() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.type == kind)))


def _sign_everything(
    registry: LocalRegistry, stack: SigstoreTestStack, digest: str, work: Path
) -> None:
    name = f"{registry.host}/{REPO}"
    bundle = stack.sign_dsse(cf.provenance(name, digest)).encode()
    attach_with_sigstore_oci(registry, REPO, digest, bundle, work)
    payload = cf.simple_signing_payload(name, digest)
    cf.push_signatures(registry, REPO, digest, [cf.signature_layer(registry, stack, REPO, payload)])
    layer = cf.attestation_layer(registry, stack, REPO, cf.provenance(name, digest))
    cf.push_attestations(registry, REPO, digest, [layer])


def test_a_pull_finds_verifies_and_stores_every_scheme_once(
    registry: LocalRegistry,
    service: RegistryService,
    db: Database,
    stack: SigstoreTestStack,
    tmp_path: Path,
) -> None:
    digest = registry.push_image(REPO, "v1")
    _sign_everything(registry, stack, digest, tmp_path)

    first = service.pull(f"{registry.host}/{REPO}:v1")

    assert first.digest == digest and first.resolved_from_tag == "v1"
    assert first.referrers_api is False  # distribution 2.8: the tag schema was used
    assert sorted(i.scheme for i in first.items) == ["cosign-att", "cosign-sig", "referrers-tag"]
    assert {i.status for i in first.items} == {"created"}, first.items
    assert _count(db, Attestation.id) == 3
    with db.session() as session:
        origins = session.scalars(select(RegistryOrigin)).all()
        assert {(o.registry_host, o.repository, o.subject_digest, o.scheme) for o in origins} == {
            (registry.host, REPO, digest, s) for s in ("cosign-att", "cosign-sig", "referrers-tag")
        }
        signature = session.get(
            Attestation, next(i.attestation_id for i in first.items if i.scheme == "cosign-sig")
        )
        assert signature is not None and signature.content_kind == "message-signature"
        assert [(s.algorithm, s.digest) for s in signature.subjects] == [
            ("sha256", digest.split(":")[1])
        ]
    accepted = _events(db, "attestation.accepted")
    assert len(accepted) == 3
    assert {e.actor for e in accepted} == {"registry"}
    assert {e.payload["origin"]["scheme"] for e in accepted} == {
        "cosign-att",
        "cosign-sig",
        "referrers-tag",
    }

    again = service.pull(f"{registry.host}/{REPO}@{digest}")

    assert {i.status for i in again.items} == {"existing"}
    assert _count(db, Attestation.id) == 3 and _count(db, RegistryOrigin.id) == 3
    assert len(_events(db, "registry.pulled")) == 2


def test_a_signature_for_another_image_is_rejected_with_its_own_code(
    registry: LocalRegistry, service: RegistryService, db: Database, stack: SigstoreTestStack
) -> None:
    digest = registry.push_image(REPO, "v1")
    other = registry.push_image(REPO, "v2")
    # A valid signature of image v2, copied beside v1.
    payload = cf.simple_signing_payload(f"{registry.host}/{REPO}", other)
    cf.push_signatures(registry, REPO, digest, [cf.signature_layer(registry, stack, REPO, payload)])

    result = service.pull(f"{registry.host}/{REPO}@{digest}")

    [item] = result.items
    assert (item.status, item.code) == ("rejected", "image_digest_mismatch")
    assert other in (item.message or "")
    assert _count(db, Attestation.id) == 0 and _count(db, RegistryOrigin.id) == 0
    [event] = _events(db, "attestation.rejected")
    assert event.actor == "registry" and event.payload["code"] == "image_digest_mismatch"


def test_a_signature_over_other_bytes_fails_verification(
    registry: LocalRegistry, service: RegistryService, db: Database, stack: SigstoreTestStack
) -> None:
    digest = registry.push_image(REPO, "v1")
    payload = cf.simple_signing_payload(f"{registry.host}/{REPO}", digest)
    layer = cf.signature_layer(registry, stack, REPO, payload, tamper="bad_signature")
    cf.push_signatures(registry, REPO, digest, [layer])

    [item] = service.pull(f"{registry.host}/{REPO}@{digest}").items

    assert (item.status, item.code) == ("rejected", "signature_invalid")
    assert _count(db, Attestation.id) == 0


def test_an_attestation_about_another_artifact_is_not_stored_beside_this_one(
    registry: LocalRegistry, service: RegistryService, db: Database, stack: SigstoreTestStack
) -> None:
    digest = registry.push_image(REPO, "v1")
    other = registry.push_image(REPO, "v2")
    layer = cf.attestation_layer(registry, stack, REPO, cf.provenance("x", other))
    cf.push_attestations(registry, REPO, digest, [layer])

    [item] = service.pull(f"{registry.host}/{REPO}@{digest}").items

    assert (item.status, item.code) == ("rejected", "image_digest_mismatch")
    assert _count(db, Attestation.id) == 0


def test_an_index_is_looked_up_with_its_platform_manifests(
    registry: LocalRegistry,
    service: RegistryService,
    db: Database,
    stack: SigstoreTestStack,
    tmp_path: Path,
) -> None:
    index = registry.push_image(REPO, "multi", platforms=2)
    manifest = json.loads(
        (
            tmp_path
            / "registry"
            / "layout-team_app-multi"
            / "blobs"
            / "sha256"
            / index.split(":")[1]
        ).read_bytes()
    )
    amd64 = manifest["manifests"][0]["digest"]
    bundle = stack.sign_dsse(cf.provenance("app", amd64)).encode()
    attach_with_sigstore_oci(registry, REPO, amd64, bundle, tmp_path)

    result = service.pull(f"{registry.host}/{REPO}:multi")

    assert result.subjects == [index, *(m["digest"] for m in manifest["manifests"])]
    [item] = result.items
    assert item.subject_digest == amd64 and item.status == "created"


def test_a_missing_image_is_a_registry_error_and_is_audited(
    registry: LocalRegistry, service: RegistryService, db: Database
) -> None:
    with pytest.raises(RegistryError) as caught:
        service.pull(f"{registry.host}/{REPO}:nope")

    assert caught.value.code == "registry_not_found"
    [event] = _events(db, "registry.pull_failed")
    assert event.actor == "registry" and event.payload["code"] == "registry_not_found"


@pytest.mark.parametrize("auth", ["htpasswd", "token"])
def test_credentials_from_a_docker_config_open_a_protected_registry(
    auth: str,
    tmp_path: Path,
    db: Database,
    trust: TrustStore,
    stack: SigstoreTestStack,
) -> None:
    with local_registry(tmp_path / "registry", auth) as registry:
        digest = registry.push_image(REPO, "v1")
        payload = cf.simple_signing_payload(f"{registry.host}/{REPO}", digest)
        layer = cf.signature_layer(registry, stack, REPO, payload)
        cf.push_signatures(registry, REPO, digest, [layer])
        anonymous = make_service(db, trust)
        with pytest.raises(RegistryError) as caught:
            anonymous.pull(f"{registry.host}/{REPO}@{digest}")
        assert caught.value.code == "registry_unauthorized"
        assert "none are configured" in caught.value.message or "anonymous" in caught.value.message

        config = registry.docker_config(tmp_path / "config.json")
        authenticated = make_service(db, trust, Keychain(auth_file=config))
        [item] = authenticated.pull(f"{registry.host}/{REPO}@{digest}").items
        assert item.status == "created"


def test_a_pull_secret_of_the_namespace_is_used_when_named(
    tmp_path: Path, db: Database, trust: TrustStore, stack: SigstoreTestStack
) -> None:
    with local_registry(tmp_path / "registry", "htpasswd") as registry:
        digest = registry.push_image(REPO, "v1")
        secrets = tmp_path / "secrets"
        (secrets / "shop" / "regcred").mkdir(parents=True)
        registry.docker_config(secrets / "shop" / "regcred" / ".dockerconfigjson")
        service = make_service(db, trust, Keychain(secrets_dir=secrets))

        with pytest.raises(RegistryError):
            service.pull(
                f"{registry.host}/{REPO}@{digest}", namespace="other", pull_secrets=["regcred"]
            )
        result = service.pull(
            f"{registry.host}/{REPO}@{digest}", namespace="shop", pull_secrets=["regcred"]
        )
        assert result.items == [] and result.digest == digest


def test_a_registry_with_its_own_ca_is_trusted_only_through_the_certs_dir(
    tmp_path: Path, db: Database, trust: TrustStore
) -> None:
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "registry test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    tls = tmp_path / "tls"
    tls.mkdir()
    (tls / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tls / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    plain = LocalRegistry(tmp_path / "plain").start()  # to push the image over HTTP first
    digest = plain.push_image(REPO, "v1")
    plain.stop()
    registry = LocalRegistry(tmp_path / "plain", port=plain.port)
    registry.tls = (tls / "cert.pem", tls / "key.pem")
    registry.start()
    try:
        with pytest.raises(RegistryError) as caught:
            make_service(db, trust).pull(f"{registry.host}/{REPO}@{digest}")
        assert caught.value.code == "registry_unavailable"  # plain HTTP to a TLS port

        certs = tmp_path / "certs.d"
        (certs / registry.host).mkdir(parents=True)
        (certs / registry.host / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        result = make_service(db, trust, certs_dir=certs).pull(f"{registry.host}/{REPO}@{digest}")
        assert result.digest == digest
    finally:
        registry.stop()


def test_legacy_signatures_with_a_timestamp_or_a_key_verify_offline(
    registry: LocalRegistry, policy_dir: Path, db: Database, stack: SigstoreTestStack
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from tests.helpers import RELEASE_KEY

    # cosign generate-key-pair makes ECDSA P-256 keys (a message signature over a digest
    # cannot be checked with pure Ed25519, which signs the bytes themselves).
    key = ec.generate_private_key(ec.SECP256R1())
    write_trust(policy_dir, stack)
    (policy_dir / "keys" / "cosign.pub").write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    service = make_service(db, TrustStore.load(policy_dir))
    digest = registry.push_image(REPO, "v1")
    payload = cf.simple_signing_payload(f"{registry.host}/{REPO}", digest)
    stamped = cf.signature_layer(registry, stack, REPO, payload, with_timestamp=True)
    keyed = cf.signature_layer(registry, stack, REPO, payload + b" ", key=key)
    cf.push_signatures(registry, REPO, digest, [stamped, keyed])
    statement = cf.provenance("app", digest)
    attested = cf.key_attestation_layer(registry, stack, REPO, statement, RELEASE_KEY)
    cf.push_attestations(registry, REPO, digest, [attested])

    items = service.pull(f"{registry.host}/{REPO}@{digest}").items

    assert [(i.scheme, i.status) for i in items] == [
        ("cosign-sig", "created"),
        ("cosign-sig", "created"),
        ("cosign-att", "created"),
    ]
    with db.session() as session:
        stored = [session.get(Attestation, i.attestation_id) for i in items]
        assert stored[0] is not None and len(stored[0].timestamps) == 2  # SET and RFC 3161
        assert stored[1] is not None and stored[1].signer_kind == "key"
