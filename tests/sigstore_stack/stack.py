"""`SigstoreTestStack`: a private Fulcio / CT log / Rekor / TSA that signs real Sigstore bundles.

Everything is generated in memory from a seed, so a stack is cheap to build and its trusted root
is identical in every process. Bundles it produces verify with the unmodified sigstore-python
``Verifier`` given ``stack.trusted_root``; each ``tamper=`` name breaks exactly one check.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import itertools
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from sigstore.models import TrustedRoot
from sigstore_models.trustroot import v1 as trustroot_v1

from tests.sigstore_stack._pki import (
    CA_NOT_BEFORE,
    CTLog,
    FulcioCA,
    derive_ec_key,
    fulcio_extensions,
    issue_leaf,
    key_id,
    now_utc,
    pem,
    spki_der,
)
from tests.sigstore_stack._tlog import TransparencyLog, b64, dsse_body, hashedrekord_body
from tests.sigstore_stack._tsa import TimestampAuthority

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
TRUSTED_ROOT_MEDIA_TYPE = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
DEFAULT_IDENTITY = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.0.0"
DEFAULT_ISSUER = "https://token.actions.githubusercontent.com"
REKOR_URL = "https://rekor.provenant.test"
FULCIO_URL = "https://fulcio.provenant.test"
CTFE_URL = "https://ctfe.provenant.test"
TSA_URL = "https://tsa.provenant.test/api/v1/timestamp"

Tamper = Literal[
    "bad_signature",
    "bad_chain",
    "expired_cert",
    "bad_sct",
    "bad_inclusion_proof",
    "bad_checkpoint",
    "bad_set",
    "tlog_body_mismatch",
    "bad_timestamp",
    "subject_missing",
    "modified_payload",
]
TAMPERS: tuple[str, ...] = get_args(Tamper)
"""Every broken variant, each defeating exactly one check (see ``SigstoreTestStack``)."""
CERTIFICATE_TAMPERS: frozenset[str] = frozenset({"bad_chain", "expired_cert", "bad_sct"})
"""Tampers about the Fulcio certificate: meaningless for key-signed bundles."""
KEY_TAMPERS: tuple[str, ...] = tuple(t for t in TAMPERS if t not in CERTIFICATE_TAMPERS)
"""Tampers ``sign_dsse_with_key`` / ``sign_artifact_with_key`` accept."""
BARE_DSSE_TAMPERS: tuple[str, ...] = ("bad_signature", "subject_missing", "modified_payload")
"""Tampers ``sign_bare_dsse`` accepts (no log, no certificate, no timestamp)."""

SigningKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey


def github_actions_extensions(
    *,
    repository: str = "acme/app",
    ref: str = "refs/tags/v1.0.0",
    sha: str = "0123456789abcdef0123456789abcdef01234567",
    workflow: str = ".github/workflows/release.yml",
    trigger: str = "push",
    run_id: str = "1234567890",
    visibility: str = "public",
    server: str = "https://github.com",
) -> dict[str, str]:
    """The Fulcio extensions GitHub Actions tokens produce, keyed by Fulcio extension name.

    Pair with ``identity=f"{server}/{repository}/{workflow}@{ref}"``.
    """
    workflow_uri = f"{server}/{repository}/{workflow}@{ref}"
    owner = repository.split("/", 1)[0]
    return {
        "githubWorkflowTrigger": trigger,
        "githubWorkflowSHA": sha,
        "githubWorkflowName": workflow.rsplit("/", 1)[-1],
        "githubWorkflowRepository": repository,
        "githubWorkflowRef": ref,
        "buildSignerURI": workflow_uri,
        "buildSignerDigest": sha,
        "runnerEnvironment": "github-hosted",
        "sourceRepositoryURI": f"{server}/{repository}",
        "sourceRepositoryDigest": sha,
        "sourceRepositoryRef": ref,
        "sourceRepositoryIdentifier": "123456789",
        "sourceRepositoryOwnerURI": f"{server}/{owner}",
        "sourceRepositoryOwnerIdentifier": "987654321",
        "buildConfigURI": workflow_uri,
        "buildConfigDigest": sha,
        "buildTrigger": trigger,
        "runInvocationURI": f"{server}/{repository}/actions/runs/{run_id}/attempts/1",
        "sourceRepositoryVisibilityAtSigning": visibility,
    }


def public_key_hint(
    public_key: ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey,
) -> str:
    """The ``publicKey.hint`` cosign writes: base64 of SHA-256 over the DER SubjectPublicKeyInfo."""
    return b64(hashlib.sha256(spki_der(public_key)).digest())


def sign_with(
    key: SigningKey, data: bytes, *, rsa_padding: Literal["pkcs1v15", "pss"] = "pkcs1v15"
) -> bytes:
    """Sign ``data`` the way cosign/sigstore do for each key type.

    ECDSA hashes with SHA-256 (SHA-384 for P-384, SHA-512 for P-521), RSA with SHA-256 and the
    given padding, Ed25519 signs the bytes themselves (pure Ed25519, no prehash).
    """
    if isinstance(key, ec.EllipticCurvePrivateKey):
        digest: hashes.HashAlgorithm = {384: hashes.SHA384(), 521: hashes.SHA512()}.get(
            key.curve.key_size, hashes.SHA256()
        )
        return key.sign(data, ec.ECDSA(digest))
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(data)
    if isinstance(key, rsa.RSAPrivateKey):
        pad: padding.AsymmetricPadding = (
            padding.PKCS1v15()
            if rsa_padding == "pkcs1v15"
            else padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        )
        return key.sign(data, pad, hashes.SHA256())
    raise TypeError(f"unsupported signing key type: {type(key).__name__}")


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: what a DSSE signature actually covers."""
    return b"DSSEv1 %d %s %d %s" % (len(payload_type), payload_type.encode(), len(payload), payload)


def _moment(signed_at: datetime | None) -> datetime:
    """Whole seconds, timezone-aware (naive means UTC): integrated times and SCTs are in seconds."""
    if signed_at is None:
        return now_utc()
    if signed_at.tzinfo is None:
        signed_at = signed_at.replace(tzinfo=UTC)
    return signed_at.replace(microsecond=0)


def _statement_bytes(statement: Mapping[str, Any] | bytes) -> bytes:
    if isinstance(statement, bytes):
        return statement
    return json.dumps(statement, separators=(",", ":")).encode()


def _without_subject(statement: Mapping[str, Any] | bytes) -> bytes:
    parsed = json.loads(statement) if isinstance(statement, bytes) else dict(statement)
    parsed.pop("subject", None)
    return _statement_bytes(parsed)


def _modified(statement: Mapping[str, Any] | bytes) -> bytes:
    """The same statement naming a different artifact: what an attacker would swap in."""
    parsed = copy.deepcopy(json.loads(statement) if isinstance(statement, bytes) else statement)
    parsed = dict(parsed)
    subjects = parsed.get("subject")
    if isinstance(subjects, list) and subjects and isinstance(subjects[0], dict):
        subjects[0]["digest"] = {"sha256": hashlib.sha256(b"evil artifact").hexdigest()}
    else:
        parsed["tampered"] = True
    return _statement_bytes(parsed)


@dataclass(frozen=True)
class _Signer:
    """Who signs a bundle: the key, what Rekor records as verifier, and the bundle material."""

    sign: Callable[[bytes], bytes]
    verifier_pem: bytes  # PEM certificate or public key, as Rekor records it
    material: dict[str, Any]  # verificationMaterial's certificate / publicKey member


class SigstoreTestStack:
    """A private Sigstore instance for tests: Fulcio CA, CT log, Rekor log and (optionally) TSA.

    Build one with ``SigstoreTestStack.get()`` (cached per process) or ``create()``. Then:

    * ``trusted_root`` / ``trusted_root_json()`` / ``write_trusted_root(path)``: its trust root;
    * ``sign_dsse`` / ``sign_artifact``: keyless (Fulcio certificate) v0.3 bundles;
    * ``sign_dsse_with_key`` / ``sign_artifact_with_key``: cosign ``--key`` style v0.3 bundles;
    * ``sign_bare_dsse``: a plain DSSE envelope, no bundle.

    ``tamper=`` (one of ``TAMPERS``) breaks exactly one check, everything else stays valid:

    * ``bad_signature``: the signature is valid, but over other content (logged consistently);
    * ``bad_chain``: the leaf comes from an untrusted CA with the same names as the trusted one;
    * ``expired_cert``: the certificate expired before the integrated time;
    * ``bad_sct``: the embedded SCT is signed by a rogue key claiming the trusted CT log's id;
    * ``bad_inclusion_proof``: one audit-path hash is flipped;
    * ``bad_checkpoint``: the checkpoint note is signed by a rogue key with the right key hint;
    * ``bad_set``: the signed entry timestamp is signed by a rogue key;
    * ``tlog_body_mismatch``: the (validly logged) entry is for another signature and content;
    * ``bad_timestamp``: the RFC 3161 token's CMS signature is forged; implies
      ``with_timestamp=True`` and ``inclusion_promise=False``, because sigstore-python merely
      ignores a bad timestamp when the log's integrated time is another source of time;
    * ``subject_missing`` (DSSE only): the signed Statement has no ``subject``; the bundle is
      cryptographically valid (``Verifier.verify_dsse`` does not parse the payload), and
      ``sigstore.dsse.Statement(payload)`` is what rejects it;
    * ``modified_payload``: DSSE: the payload was swapped after signing; artifacts: the bundle
      is entirely valid, but for other bytes than ``data``.
    """

    _cache: ClassVar[dict[tuple[str, bool], SigstoreTestStack]] = {}
    _cache_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, seed: str = "provenant-test", *, with_tsa: bool = True) -> None:
        """Prefer ``get()`` / ``create()``; ``seed`` fixes every key, so equal seeds trust
        each other's bundles and different seeds don't."""
        self.seed = seed
        organization = f"{seed}.invalid"
        self.fulcio = FulcioCA.create(seed, organization)
        self.ct_log = CTLog(derive_ec_key(f"{seed}/ctlog", ec.SECP256R1()))
        tree_id = int.from_bytes(hashlib.sha256(f"{seed}/tree".encode()).digest()[:7], "big")
        self.rekor = TransparencyLog(
            derive_ec_key(f"{seed}/rekor", ec.SECP256R1()),
            hostname="rekor.provenant.test",
            tree_id=tree_id,
        )
        self.tsa: TimestampAuthority | None = (
            TimestampAuthority.create(seed, organization) if with_tsa else None
        )
        # Impostors for the tampers: same names and claimed ids, keys nobody trusts.
        self._rogue_fulcio = FulcioCA.create(f"{seed}/rogue", organization)
        self._rogue_key = derive_ec_key(f"{seed}/rogue-signer", ec.SECP256R1())
        self._tsa_serials = itertools.count(1)
        self._trusted_root: TrustedRoot | None = None

    @classmethod
    def get(cls, seed: str = "provenant-test", *, with_tsa: bool = True) -> SigstoreTestStack:
        """The per-process shared stack for ``seed`` (built on first use)."""
        with cls._cache_lock:
            key = (seed, with_tsa)
            if key not in cls._cache:
                cls._cache[key] = cls(seed, with_tsa=with_tsa)
            return cls._cache[key]

    @classmethod
    def create(cls, seed: str = "provenant-test", *, with_tsa: bool = True) -> SigstoreTestStack:
        """A fresh stack (own log state); same ``seed`` means the same keys and trust root."""
        return cls(seed, with_tsa=with_tsa)

    # -- trust root -------------------------------------------------------------------------

    def trusted_root_dict(self) -> dict[str, Any]:
        """The trusted root as the protobuf-specs JSON object."""
        valid_for = {"start": CA_NOT_BEFORE.strftime("%Y-%m-%dT%H:%M:%SZ")}

        def der(cert: x509.Certificate) -> dict[str, str]:
            return {"rawBytes": b64(cert.public_bytes(serialization.Encoding.DER))}

        def log(url: str, key: ec.EllipticCurvePrivateKey) -> dict[str, Any]:
            return {
                "baseUrl": url,
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": b64(spki_der(key.public_key())),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": valid_for,
                },
                "logId": {"keyId": b64(key_id(key.public_key()))},
            }

        root: dict[str, Any] = {
            "mediaType": TRUSTED_ROOT_MEDIA_TYPE,
            "tlogs": [log(REKOR_URL, self.rekor.key)],
            "certificateAuthorities": [
                {
                    "subject": {"organization": f"{self.seed}.invalid", "commonName": "sigstore"},
                    "uri": FULCIO_URL,
                    "certChain": {"certificates": [der(c) for c in self.fulcio.chain]},
                    "validFor": valid_for,
                }
            ],
            "ctlogs": [log(CTFE_URL, self.ct_log.key)],
            "timestampAuthorities": [],
        }
        if self.tsa is not None:
            root["timestampAuthorities"].append(
                {
                    "subject": {
                        "organization": f"{self.seed}.invalid",
                        "commonName": "sigstore-tsa-selfsigned",
                    },
                    "uri": TSA_URL,
                    "certChain": {"certificates": [der(c) for c in self.tsa.chain]},
                    "validFor": valid_for,
                }
            )
        return root

    def trusted_root_json(self) -> str:
        """``trusted_root.json`` contents (media type ``...trustedroot+json;version=0.1``)."""
        return json.dumps(self.trusted_root_dict(), indent=2)

    def write_trusted_root(self, path: str | Path) -> Path:
        """Write ``trusted_root.json`` to ``path`` (a file path) and return it."""
        target = Path(path)
        target.write_text(self.trusted_root_json())
        return target

    @property
    def trusted_root(self) -> TrustedRoot:
        """The root as sigstore-python's ``TrustedRoot``, for ``Verifier(trusted_root=...)``."""
        if self._trusted_root is None:
            inner = trustroot_v1.TrustedRoot.from_json(self.trusted_root_json())
            self._trusted_root = TrustedRoot(inner)
        return self._trusted_root

    # -- keyless (Fulcio certificate) bundles ------------------------------------------------

    def issue_certificate(
        self,
        public_key: ec.EllipticCurvePublicKey,
        *,
        identity: str = DEFAULT_IDENTITY,
        issuer: str | None = DEFAULT_ISSUER,
        extensions: Mapping[str, str | bytes] | None = None,
        signed_at: datetime | None = None,
        tamper: str | None = None,
    ) -> x509.Certificate:
        """A Fulcio leaf for ``public_key``, valid from a minute before ``signed_at`` for 10 min.

        Understands the certificate tampers (``bad_chain``, ``expired_cert``, ``bad_sct``).
        """
        at = _moment(signed_at)
        not_before, not_after = at - timedelta(minutes=1), at + timedelta(minutes=9)
        if tamper == "expired_cert":
            not_before, not_after = at - timedelta(minutes=20), at - timedelta(minutes=10)
        ct_log = self.ct_log
        if tamper == "bad_sct":
            ct_log = CTLog(self._rogue_key)
        return issue_leaf(
            self._rogue_fulcio if tamper == "bad_chain" else self.fulcio,
            public_key,
            identity=identity,
            extensions=fulcio_extensions(issuer, extensions),
            not_before=not_before,
            not_after=not_after,
            ct_log=ct_log,
            sct_log_id=self.ct_log.log_id,
        )

    def _keyless_signer(
        self,
        *,
        identity: str,
        issuer: str | None,
        extensions: Mapping[str, str | bytes] | None,
        signed_at: datetime,
        tamper: str | None,
    ) -> _Signer:
        # An ephemeral P-256 key per signature, as sigstore clients do.
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self.issue_certificate(
            key.public_key(),
            identity=identity,
            issuer=issuer,
            extensions=extensions,
            signed_at=signed_at,
            tamper=tamper,
        )
        return _Signer(
            sign=lambda data: key.sign(data, ec.ECDSA(hashes.SHA256())),
            verifier_pem=pem(cert),
            material={
                "certificate": {"rawBytes": b64(cert.public_bytes(serialization.Encoding.DER))}
            },
        )

    def sign_dsse(
        self,
        statement: Mapping[str, Any] | bytes,
        *,
        identity: str = DEFAULT_IDENTITY,
        issuer: str | None = DEFAULT_ISSUER,
        extensions: Mapping[str, str | bytes] | None = None,
        tamper: str | None = None,
        with_timestamp: bool = False,
        inclusion_promise: bool = True,
        signed_at: datetime | None = None,
        payload_type: str = INTOTO_PAYLOAD_TYPE,
    ) -> str:
        """A keyless v0.3 bundle (JSON) of a DSSE envelope around ``statement``.

        ``statement`` is a dict (serialized as compact JSON) or the exact payload bytes.
        ``identity`` becomes a URI SAN (contains ``://``) or an e-mail SAN; ``issuer`` goes in
        Fulcio extensions .1.1 and .1.8 (``None`` omits both); ``extensions`` maps Fulcio names
        (``FULCIO_EXTENSION_OIDS``) or dotted OIDs to values. The Rekor entry is ``dsse`` 0.0.1.
        ``with_timestamp`` adds an RFC 3161 timestamp of the signature; ``inclusion_promise=False``
        drops the SET (then the TSA is the only source of time). ``signed_at`` defaults to now.
        """
        at = _moment(signed_at)
        self._check_tamper(tamper, TAMPERS)
        signer = self._keyless_signer(
            identity=identity, issuer=issuer, extensions=extensions, signed_at=at, tamper=tamper
        )
        return self._dsse_bundle(
            statement,
            signer,
            tamper=tamper,
            with_timestamp=with_timestamp,
            inclusion_promise=inclusion_promise,
            signed_at=at,
            payload_type=payload_type,
        )

    def sign_artifact(
        self,
        data: bytes,
        *,
        identity: str = DEFAULT_IDENTITY,
        issuer: str | None = DEFAULT_ISSUER,
        extensions: Mapping[str, str | bytes] | None = None,
        tamper: str | None = None,
        with_timestamp: bool = False,
        inclusion_promise: bool = True,
        signed_at: datetime | None = None,
    ) -> str:
        """A keyless v0.3 bundle (JSON) with a message signature over ``data``.

        Same options as ``sign_dsse``; the Rekor entry is ``hashedrekord`` 0.0.1.
        """
        at = _moment(signed_at)
        self._check_tamper(tamper, TAMPERS, artifact=True)
        signer = self._keyless_signer(
            identity=identity, issuer=issuer, extensions=extensions, signed_at=at, tamper=tamper
        )
        return self._artifact_bundle(
            data,
            signer,
            tamper=tamper,
            with_timestamp=with_timestamp,
            inclusion_promise=inclusion_promise,
            signed_at=at,
        )

    # -- key-signed bundles (cosign --key) ---------------------------------------------------

    @staticmethod
    def _key_signer(
        private_key: SigningKey, hint: str | None, rsa_padding: Literal["pkcs1v15", "pss"]
    ) -> _Signer:
        public_key = private_key.public_key()
        return _Signer(
            sign=lambda data: sign_with(private_key, data, rsa_padding=rsa_padding),
            verifier_pem=public_key.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            material={"publicKey": {"hint": public_key_hint(public_key) if hint is None else hint}},
        )

    def sign_dsse_with_key(
        self,
        statement: Mapping[str, Any] | bytes,
        private_key: SigningKey,
        *,
        hint: str | None = None,
        tamper: str | None = None,
        with_timestamp: bool = False,
        inclusion_promise: bool = True,
        signed_at: datetime | None = None,
        payload_type: str = INTOTO_PAYLOAD_TYPE,
        rsa_padding: Literal["pkcs1v15", "pss"] = "pkcs1v15",
    ) -> str:
        """A v0.3 DSSE bundle signed with a plain key, as ``cosign attest --key`` writes it.

        ``verificationMaterial.publicKey.hint`` is ``hint`` or, by default,
        ``public_key_hint(key)``; the ``dsse`` Rekor entry records the PEM public key.
        sigstore-python cannot verify these (it requires a certificate in v0.3 bundles).
        Tampers: ``KEY_TAMPERS``.
        """
        at = _moment(signed_at)
        self._check_tamper(tamper, KEY_TAMPERS)
        return self._dsse_bundle(
            statement,
            self._key_signer(private_key, hint, rsa_padding),
            tamper=tamper,
            with_timestamp=with_timestamp,
            inclusion_promise=inclusion_promise,
            signed_at=at,
            payload_type=payload_type,
        )

    def sign_artifact_with_key(
        self,
        data: bytes,
        private_key: SigningKey,
        *,
        hint: str | None = None,
        tamper: str | None = None,
        with_timestamp: bool = False,
        inclusion_promise: bool = True,
        signed_at: datetime | None = None,
        rsa_padding: Literal["pkcs1v15", "pss"] = "pkcs1v15",
    ) -> str:
        """A v0.3 message-signature bundle signed with a plain key (``cosign sign-blob --key``).

        The signature covers ``data`` itself (see ``sign_with``); the ``hashedrekord`` entry
        records SHA-256(``data``) and the PEM public key. Tampers: ``KEY_TAMPERS`` minus
        ``subject_missing``.
        """
        at = _moment(signed_at)
        self._check_tamper(tamper, KEY_TAMPERS, artifact=True)
        return self._artifact_bundle(
            data,
            self._key_signer(private_key, hint, rsa_padding),
            tamper=tamper,
            with_timestamp=with_timestamp,
            inclusion_promise=inclusion_promise,
            signed_at=at,
        )

    def sign_bare_dsse(
        self,
        statement: Mapping[str, Any] | bytes,
        private_key: SigningKey | Sequence[SigningKey],
        keyid: str | Sequence[str] = "",
        *,
        tamper: str | None = None,
        payload_type: str = INTOTO_PAYLOAD_TYPE,
        rsa_padding: Literal["pkcs1v15", "pss"] = "pkcs1v15",
    ) -> str:
        """A bare DSSE envelope (JSON ``{payload, payloadType, signatures: [{keyid, sig}]}``).

        Several keys give several signatures (``keyid`` then is one id per key). Tampers:
        ``BARE_DSSE_TAMPERS`` (``bad_signature`` breaks the first signature only).
        """
        self._check_tamper(tamper, BARE_DSSE_TAMPERS)
        keys = [private_key] if not isinstance(private_key, Sequence) else list(private_key)
        keyids = [keyid] * len(keys) if isinstance(keyid, str) else list(keyid)
        if len(keyids) != len(keys):
            raise ValueError("need one keyid per private key")
        payload = (
            _without_subject(statement)
            if tamper == "subject_missing"
            else _statement_bytes(statement)
        )
        signatures = []
        for n, (key, kid) in enumerate(zip(keys, keyids, strict=True)):
            signed = payload + b" " if tamper == "bad_signature" and n == 0 else payload
            sig = sign_with(key, pae(payload_type, signed), rsa_padding=rsa_padding)
            signatures.append({"keyid": kid, "sig": b64(sig)})
        if tamper == "modified_payload":
            payload = _modified(statement)
        return json.dumps(
            {"payload": b64(payload), "payloadType": payload_type, "signatures": signatures}
        )

    # -- assembly ----------------------------------------------------------------------------

    @staticmethod
    def _check_tamper(
        tamper: str | None, allowed: Sequence[str], *, artifact: bool = False
    ) -> None:
        if tamper is None:
            return
        if tamper not in allowed or (artifact and tamper == "subject_missing"):
            raise ValueError(f"tamper {tamper!r} does not apply here")

    def _log(
        self,
        body: bytes,
        *,
        kind: str,
        signed_at: datetime,
        tamper: str | None,
        inclusion_promise: bool,
    ) -> dict[str, Any]:
        return self.rekor.append(
            body,
            kind=kind,
            integrated_time=int(signed_at.timestamp()),
            inclusion_promise=inclusion_promise and tamper != "bad_timestamp",
            checkpoint_signer=self._rogue_key if tamper == "bad_checkpoint" else None,
            set_signer=self._rogue_key if tamper == "bad_set" else None,
            corrupt_proof=tamper == "bad_inclusion_proof",
        )

    def _timestamp_data(
        self, signature: bytes, *, signed_at: datetime, with_timestamp: bool, tamper: str | None
    ) -> dict[str, Any] | None:
        if not with_timestamp and tamper != "bad_timestamp":
            return None
        if self.tsa is None:
            raise ValueError("this stack was created with_tsa=False")
        token = self.tsa.timestamp(
            signature,
            signed_at,
            serial=next(self._tsa_serials),
            signing_key=self._rogue_key if tamper == "bad_timestamp" else None,
        )
        return {"rfc3161Timestamps": [{"signedTimestamp": b64(token)}]}

    def _bundle(
        self,
        signer: _Signer,
        tlog_entry: dict[str, Any],
        timestamps: dict[str, Any] | None,
        content: dict[str, Any],
    ) -> str:
        material: dict[str, Any] = {**signer.material, "tlogEntries": [tlog_entry]}
        if timestamps is not None:
            material["timestampVerificationData"] = timestamps
        return json.dumps(
            {"mediaType": BUNDLE_MEDIA_TYPE, "verificationMaterial": material, **content}
        )

    def _dsse_bundle(
        self,
        statement: Mapping[str, Any] | bytes,
        signer: _Signer,
        *,
        tamper: str | None,
        with_timestamp: bool,
        inclusion_promise: bool,
        signed_at: datetime,
        payload_type: str,
    ) -> str:
        payload = (
            _without_subject(statement)
            if tamper == "subject_missing"
            else _statement_bytes(statement)
        )
        # A well-formed signature over other bytes, not garbage: only the cryptographic check
        # may notice, and the log records this very signature so it stays consistent.
        signed = payload + b" " if tamper == "bad_signature" else payload
        signature = signer.sign(pae(payload_type, signed))
        envelope = {
            "payload": b64(payload),
            "payloadType": payload_type,
            "signatures": [{"sig": b64(signature)}],
        }

        logged_payload, logged_sig, logged_envelope = payload, signature, envelope
        if tamper == "tlog_body_mismatch":
            logged_payload = _modified(statement)
            logged_sig = signer.sign(pae(payload_type, logged_payload))
            logged_envelope = {
                "payload": b64(logged_payload),
                "payloadType": payload_type,
                "signatures": [{"sig": b64(logged_sig)}],
            }
        body = dsse_body(
            envelope=logged_envelope,
            payload=logged_payload,
            signatures=[logged_sig],
            verifier_pem=signer.verifier_pem,
        )
        entry = self._log(
            body,
            kind="dsse",
            signed_at=signed_at,
            tamper=tamper,
            inclusion_promise=inclusion_promise,
        )
        if tamper == "modified_payload":
            envelope = {**envelope, "payload": b64(_modified(statement))}
        timestamps = self._timestamp_data(
            signature, signed_at=signed_at, with_timestamp=with_timestamp, tamper=tamper
        )
        return self._bundle(signer, entry, timestamps, {"dsseEnvelope": envelope})

    def _artifact_bundle(
        self,
        data: bytes,
        signer: _Signer,
        *,
        tamper: str | None,
        with_timestamp: bool,
        inclusion_promise: bool,
        signed_at: datetime,
    ) -> str:
        if tamper == "modified_payload":
            # The whole bundle is consistent, just for other bytes than the caller's ``data``.
            data = data + b"\x00tampered"
        digest = hashlib.sha256(data).digest()
        signature = signer.sign(data + b" " if tamper == "bad_signature" else data)

        logged_digest, logged_sig = digest, signature
        if tamper == "tlog_body_mismatch":
            other = data + b"\x00other"
            logged_digest, logged_sig = hashlib.sha256(other).digest(), signer.sign(other)
        body = hashedrekord_body(
            digest=logged_digest, signature=logged_sig, verifier_pem=signer.verifier_pem
        )
        entry = self._log(
            body,
            kind="hashedrekord",
            signed_at=signed_at,
            tamper=tamper,
            inclusion_promise=inclusion_promise,
        )
        timestamps = self._timestamp_data(
            signature, signed_at=signed_at, with_timestamp=with_timestamp, tamper=tamper
        )
        content = {
            "messageSignature": {
                "messageDigest": {"algorithm": "SHA2_256", "digest": b64(digest)},
                "signature": b64(signature),
            }
        }
        return self._bundle(signer, entry, timestamps, content)


def decode_bundle(bundle_json: str) -> dict[str, Any]:
    """Parsed bundle JSON with ``canonicalizedBody`` decoded, handy in assertions and debugging."""
    bundle: dict[str, Any] = json.loads(bundle_json)
    for entry in bundle["verificationMaterial"].get("tlogEntries", []):
        entry["body"] = json.loads(base64.b64decode(entry["canonicalizedBody"]))
    return bundle
