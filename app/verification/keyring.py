"""Plain public keys trusted for key-signed bundles, DSSE envelopes and in-toto links.

A signer names its key with whatever id its tool computes, so one key is indexed under every
id a real signer may use for it (see ``key_ids``). The ids are hints only: a signature must
still verify against the key, so indexing extra aliases never widens what is trusted.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from securesystemslib.formats import encode_canonical
from securesystemslib.signer import SSlibKey


@dataclass(frozen=True)
class TrustedKey:
    key_id: str  # canonical id: sha256 hex of the DER SubjectPublicKeyInfo
    # "ecdsa-p256" | "ecdsa-p384" | "ecdsa-p521" | "ed25519" | "rsa-pss" | "rsa-pkcs1v15"
    # | "rsa" (either padding)
    algorithm: str
    public_key: PublicKeyTypes
    public_key_pem: str
    source: str  # where it was configured, e.g. "policies/keys/release.pub"

    def __reduce__(self) -> tuple[object, ...]:
        # cryptography's key objects do not pickle, and ingest workers get the trust store
        # pickled (app/attestations/workers.py): the PEM is the same key.
        fields = (self.key_id, self.algorithm, self.public_key_pem, self.source)
        return (_trusted_key_from_pem, fields)

    def verify(self, signature: bytes, data: bytes) -> bool:
        """True when ``signature`` is a valid signature over ``data`` by this key."""
        key = self.public_key
        try:
            if isinstance(key, ed25519.Ed25519PublicKey):
                key.verify(signature, data)
            elif isinstance(key, ec.EllipticCurvePublicKey):
                return _verify_ecdsa(key, signature, data)
            elif isinstance(key, rsa.RSAPublicKey):
                return _verify_rsa(key, signature, data, self.algorithm)
            else:
                return False
        except InvalidSignature:
            return False
        return True

    def verifying_algorithm(self, signature: bytes, data: bytes) -> str | None:
        """The precise algorithm that verifies ``signature``, or None when none does.

        For an RSA key of unknown padding ("rsa") this says which padding the signer used,
        so the recorded signer facts never carry the ambiguous "rsa".
        """
        if self.algorithm == "rsa":
            for precise in ("rsa-pss", "rsa-pkcs1v15"):
                if replace(self, algorithm=precise).verify(signature, data):
                    return precise
            return None
        return self.algorithm if self.verify(signature, data) else None


def _trusted_key_from_pem(key_id: str, algorithm: str, pem: str, source: str) -> TrustedKey:
    public_key = serialization.load_pem_public_key(pem.encode())
    return TrustedKey(key_id, algorithm, public_key, pem, source)


_EC_HASHES: dict[int, type[hashes.HashAlgorithm]] = {
    256: hashes.SHA256,
    384: hashes.SHA384,
    521: hashes.SHA512,
}


def _verify_ecdsa(key: ec.EllipticCurvePublicKey, signature: bytes, data: bytes) -> bool:
    algorithm = ec.ECDSA(_EC_HASHES.get(key.curve.key_size, hashes.SHA256)())
    try:
        key.verify(signature, data, algorithm)
        return True
    except InvalidSignature:
        pass
    # Cloud KMS and WebCrypto signers emit IEEE P1363 (r || s) instead of DER; the
    # slsa-verifier VSA test data is signed that way.
    size = (key.curve.key_size + 7) // 8
    if len(signature) != 2 * size:
        return False
    r = int.from_bytes(signature[:size], "big")
    s = int.from_bytes(signature[size:], "big")
    try:
        key.verify(encode_dss_signature(r, s), data, algorithm)
    except InvalidSignature:
        return False
    return True


def _verify_rsa(key: rsa.RSAPublicKey, signature: bytes, data: bytes, algorithm: str) -> bool:
    paddings: list[padding.AsymmetricPadding] = []
    if algorithm in ("rsa-pss", "rsa"):
        paddings += [
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO),
        ]
    if algorithm in ("rsa-pkcs1v15", "rsa"):
        paddings.append(padding.PKCS1v15())
    for pad in paddings:
        try:
            key.verify(signature, data, pad, hashes.SHA256())
            return True
        except InvalidSignature:
            continue
    return False


def spki_key_id(public_key: PublicKeyTypes) -> str:
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


class KeyLoadError(ValueError):
    """A configured key file (or layout) cannot be used; the message names the file."""

    def __init__(self, source: str, problem: str) -> None:
        super().__init__(f"{source}: {problem}")
        self.source = source
        self.problem = problem


# securesystemslib scheme -> our algorithm name. Only SHA-256 RSA schemes: TrustedKey.verify
# hashes RSA with SHA-256, so accepting "rsassa-pss-sha512" would silently never verify.
_SCHEME_ALGORITHMS = {
    "rsassa-pss-sha256": "rsa-pss",
    "rsa-pkcs1v15-sha256": "rsa-pkcs1v15",
    "ecdsa-sha2-nistp256": "ecdsa-p256",
    "ecdsa-sha2-nistp384": "ecdsa-p384",
    "ecdsa-sha2-nistp521": "ecdsa-p521",
    "ed25519": "ed25519",
}
_EC_CURVES = {"secp256r1": "ecdsa-p256", "secp384r1": "ecdsa-p384", "secp521r1": "ecdsa-p521"}
_MIN_RSA_BITS = 2048
# in-toto 0.x, in-toto-golang and securesystemslib < 1.0 hashed this field into the key id.
_LEGACY_KEYID_HASH_ALGORITHMS = ["sha256", "sha512"]


def key_algorithm(public_key: PublicKeyTypes, scheme: str | None = None) -> str:
    """Our algorithm name for a key (and, when known, its securesystemslib scheme)."""
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        natural = "ed25519"
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        if public_key.curve.name not in _EC_CURVES:
            raise ValueError(f"unsupported elliptic curve {public_key.curve.name}")
        natural = _EC_CURVES[public_key.curve.name]
    elif isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < _MIN_RSA_BITS:
            raise ValueError(f"RSA key of {public_key.key_size} bits is too weak")
        natural = "rsa"
    else:
        raise ValueError(f"unsupported key type {type(public_key).__name__}")
    if scheme is None:
        return natural
    algorithm = _SCHEME_ALGORITHMS.get(scheme)
    if algorithm is None:
        raise ValueError(f"unsupported signing scheme {scheme!r}")
    if algorithm != natural and not (natural == "rsa" and algorithm.startswith("rsa-")):
        raise ValueError(f"scheme {scheme!r} does not fit a {natural} key")
    return algorithm


def _schemes_for(algorithm: str) -> list[str]:
    if algorithm == "rsa":
        return ["rsassa-pss-sha256", "rsa-pkcs1v15-sha256"]
    return [s for s, a in _SCHEME_ALGORITHMS.items() if a == algorithm]


def _keytypes_for(scheme: str) -> list[str]:
    if scheme.startswith("ecdsa-"):
        # securesystemslib < 0.20 used the scheme as keytype for ECDSA keys.
        return ["ecdsa", scheme]
    if scheme == "ed25519":
        return ["ed25519"]
    return ["rsa"]


def _sha256_canonical(obj: Mapping[str, Any]) -> str:
    return hashlib.sha256(encode_canonical(dict(obj)).encode("utf-8")).hexdigest()


def _sslib_public_values(public_key: PublicKeyTypes) -> list[str]:
    """keyval["public"] strings signers may have hashed: securesystemslib emits the PEM
    with a trailing newline, legacy tools stripped it; Ed25519 is raw hex."""
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return [raw.hex()]
    pem = public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    return [pem, pem.strip()]


def key_ids(
    public_key: PublicKeyTypes,
    algorithm: str,
    public_values: Iterable[str] = (),
) -> dict[str, str]:
    """Every id a signer may put in ``keyid`` for this key -> the algorithm it implies.

    - sha256 hex of the DER SubjectPublicKeyInfo (cosign, sigstore-go, our canonical id)
    - base64 of that digest (sigstore bundle ``publicKey.hint``) and ``SHA256:`` + unpadded
      base64 (npm registry keys)
    - securesystemslib >= 1.0 / in-toto 2+: sha256 of the canonical JSON of
      {keytype, scheme, keyval{public}} (``compute_default_keyid``)
    - legacy securesystemslib / in-toto-golang: the same with
      ``keyid_hash_algorithms: [sha256, sha512]`` hashed in

    An RSA key of unknown scheme gets the securesystemslib ids of both SHA-256 schemes; the
    id a signer used then also says which padding it used.
    ``public_values`` adds keyval["public"] spellings seen in a key file or layout.
    """
    digest = hashlib.sha256(
        public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).digest()
    ids = {
        digest.hex(): algorithm,
        base64.b64encode(digest).decode(): algorithm,
        "SHA256:" + base64.b64encode(digest).decode().rstrip("="): algorithm,
    }
    values = list(dict.fromkeys([*public_values, *_sslib_public_values(public_key)]))
    for scheme in _schemes_for(algorithm):
        scheme_algorithm = _SCHEME_ALGORITHMS[scheme]
        ids.setdefault(SSlibKey.from_crypto(public_key, scheme=scheme).keyid, scheme_algorithm)
        for keytype in _keytypes_for(scheme):
            for value in values:
                base = {"keytype": keytype, "scheme": scheme, "keyval": {"public": value}}
                legacy = {**base, "keyid_hash_algorithms": _LEGACY_KEYID_HASH_ALGORITHMS}
                ids.setdefault(_sha256_canonical(base), scheme_algorithm)
                ids.setdefault(_sha256_canonical(legacy), scheme_algorithm)
    return ids


def index_public_key(
    public_key: PublicKeyTypes,
    source: str,
    *,
    scheme: str | None = None,
    extra_ids: Iterable[str] = (),
    public_values: Iterable[str] = (),
) -> dict[str, TrustedKey]:
    """One key under all of its ids (``key_ids`` plus ``extra_ids``, e.g. a layout's keyid).

    Raises ValueError for key types, curves or schemes that cannot be verified.
    """
    algorithm = key_algorithm(public_key, scheme)
    pem = public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    canonical = spki_key_id(public_key)
    variants: dict[str, TrustedKey] = {}

    def variant(alg: str) -> TrustedKey:
        if alg not in variants:
            variants[alg] = TrustedKey(canonical, alg, public_key, pem, source)
        return variants[alg]

    index = {
        kid: variant(alg) for kid, alg in key_ids(public_key, algorithm, public_values).items()
    }
    for kid in extra_ids:
        if kid:
            index[kid] = variant(algorithm)
    return index


# -- files -------------------------------------------------------------------------------------

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----", re.DOTALL)
_KEY_SUFFIXES = {".pub", ".pem", ".json"}


@dataclass(frozen=True)
class _KeyEntry:
    public_key: PublicKeyTypes
    scheme: str | None = None
    extra_ids: tuple[str, ...] = ()
    public_values: tuple[str, ...] = ()


def load_keys(policy_dir: Path) -> dict[str, TrustedKey]:
    """Every trusted key under ``policy_dir``, indexed by each id a signer may use for it.

    Sources, in this order (the first source of a key names it): ``keys/**/*.{pub,pem,json}``
    (PEM SubjectPublicKeyInfo, OpenSSH public keys, securesystemslib/in-toto JSON keys, or a
    JSON object of keyid -> key), then the functionary keys of ``layouts/*.layout`` (classic
    or DSSE). Layout signatures are not checked here: that is the policy engine's job.

    Raises KeyLoadError naming the file for anything unreadable, private, or unsupported, and
    when one id would name two different keys.
    """
    index: dict[str, TrustedKey] = {}
    for path, entries in _configured_entries(policy_dir):
        source = _source_name(policy_dir, path)
        for entry in entries:
            try:
                found = index_public_key(
                    entry.public_key,
                    source,
                    scheme=entry.scheme,
                    extra_ids=entry.extra_ids,
                    public_values=entry.public_values,
                )
            except ValueError as exc:
                raise KeyLoadError(source, str(exc)) from exc
            _merge(index, found, source)
    return index


def _configured_entries(policy_dir: Path) -> Iterator[tuple[Path, list[_KeyEntry]]]:
    keys_dir = policy_dir / "keys"
    if keys_dir.is_dir():
        for path in sorted(keys_dir.rglob("*")):
            if path.is_file() and path.suffix in _KEY_SUFFIXES and not path.name.startswith("."):
                yield path, _read_key_file(path, _source_name(policy_dir, path))
    layouts_dir = policy_dir / "layouts"
    if layouts_dir.is_dir():
        for path in sorted(layouts_dir.glob("*.layout")):
            yield path, _read_layout(path, _source_name(policy_dir, path))


def _source_name(policy_dir: Path, path: Path) -> str:
    return f"{policy_dir.name}/{path.relative_to(policy_dir).as_posix()}"


def _merge(index: dict[str, TrustedKey], found: Mapping[str, TrustedKey], source: str) -> None:
    for kid, key in found.items():
        existing = index.get(kid)
        if existing is None:
            index[kid] = key
        elif existing.key_id != key.key_id:
            raise KeyLoadError(
                source, f"key id {kid} already names a different key from {existing.source}"
            )


def _read_key_file(path: Path, source: str) -> list[_KeyEntry]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise KeyLoadError(source, f"cannot read: {exc.strerror}") from exc
    text = raw.lstrip()
    try:
        if text.startswith(b"{"):
            return _json_key_entries(_parse_json(text, source), source)
        if b"-----BEGIN" in raw:
            return _pem_entries(raw, source)
        if text.startswith((b"ssh-", b"ecdsa-sha2-")):
            return [_KeyEntry(serialization.load_ssh_public_key(text.strip()))]
    except KeyLoadError:
        raise
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyLoadError(source, f"not a usable public key: {exc}") from exc
    raise KeyLoadError(
        source, "not a PEM public key, OpenSSH public key, or securesystemslib JSON key"
    )


def _parse_json(text: bytes, source: str) -> object:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise KeyLoadError(source, f"invalid JSON: {exc}") from exc


def _pem_entries(raw: bytes, source: str) -> list[_KeyEntry]:
    entries = []
    for match in _PEM_BLOCK.finditer(raw):
        label = match.group(1).decode()
        if "PRIVATE" in label:
            raise KeyLoadError(source, "holds a private key: configure only the public key")
        if label == "CERTIFICATE":
            raise KeyLoadError(
                source,
                "is a certificate, not a public key "
                "(extract it with: openssl x509 -pubkey -noout -in FILE)",
            )
        entries.append(_KeyEntry(serialization.load_pem_public_key(match.group(0))))
    if not entries:
        raise KeyLoadError(source, "no complete PEM block found")
    return entries


def _json_key_entries(data: object, source: str) -> list[_KeyEntry]:
    if isinstance(data, dict) and "keyval" in data:
        kid = data.get("keyid")
        return [_sslib_entry(data, kid if isinstance(kid, str) else None, source)]
    mapping = data.get("keys") if isinstance(data, dict) and "keys" in data else data
    if isinstance(mapping, dict) and mapping and all(isinstance(v, dict) for v in mapping.values()):
        return [_sslib_entry(key, str(kid), source) for kid, key in mapping.items()]
    raise KeyLoadError(
        source, "JSON is neither a securesystemslib key nor an object of keyid -> key"
    )


def _sslib_entry(key: Mapping[str, Any], keyid: str | None, source: str) -> _KeyEntry:
    """A securesystemslib/in-toto key dict: keytype, scheme, keyval{public}."""
    keyval = key.get("keyval")
    if not isinstance(keyval, dict):
        raise KeyLoadError(source, f"key {keyid or ''}: keyval must be an object".strip())
    if keyval.get("private"):
        raise KeyLoadError(source, "holds a private key: configure only the public key")
    keytype, scheme, public = key.get("keytype"), key.get("scheme"), keyval.get("public")
    if not (isinstance(keytype, str) and isinstance(scheme, str) and isinstance(public, str)):
        if isinstance(public, dict) or "method" in key:
            raise KeyLoadError(source, f"key {keyid}: OpenPGP keys are not supported")
        raise KeyLoadError(source, f"key {keyid}: keytype, scheme and keyval.public required")
    try:
        public_key = sslib_public_key(keytype, public)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyLoadError(source, f"key {keyid}: bad public key value: {exc}") from exc
    extra = [keyid] if keyid else []
    # The id of the dict exactly as written covers spellings our key_ids cannot guess.
    stripped = {k: v for k, v in key.items() if k not in ("keyid", "keyval")}
    extra.append(_sha256_canonical({**stripped, "keyval": {"public": public}}))
    return _KeyEntry(public_key, scheme, tuple(extra), (public,))


def _read_layout(path: Path, source: str) -> list[_KeyEntry]:
    # in-toto's Layout model validates the body; the import stays local so the keyring
    # does not pull in in-toto for deployments without layouts.
    from in_toto.models.layout import Layout
    from securesystemslib.exceptions import FormatError

    try:
        data = _parse_json(path.read_bytes(), source)
    except OSError as exc:
        raise KeyLoadError(source, f"cannot read: {exc.strerror}") from exc
    body: object = None
    if isinstance(data, dict) and "signed" in data:
        body = data["signed"]
    elif isinstance(data, dict) and isinstance(data.get("payload"), str):
        try:
            body = json.loads(base64.b64decode(data["payload"], validate=True))
        except (ValueError, json.JSONDecodeError) as exc:
            raise KeyLoadError(source, f"DSSE payload is not base64 JSON: {exc}") from exc
    if not isinstance(body, dict) or body.get("_type") != "layout":
        raise KeyLoadError(source, "not an in-toto layout (classic or DSSE)")
    try:
        layout = Layout.read(body)
    except (FormatError, ValueError, TypeError, KeyError) as exc:
        raise KeyLoadError(source, f"invalid in-toto layout: {exc}") from exc
    return [_sslib_entry(key, str(kid), source) for kid, key in layout.keys.items()]


def sslib_public_key(keytype: str, public: str) -> PublicKeyTypes:
    """The key in a securesystemslib/in-toto key dict's ``keyval.public``: hex for Ed25519,
    PEM for the others. Raises ValueError or UnsupportedAlgorithm."""
    if keytype == "ed25519":
        return ed25519.Ed25519PublicKey.from_public_bytes(bytes.fromhex(public))
    return serialization.load_pem_public_key(public.encode())
