"""load_keys: every key source, every key id style, and a clear error for every bad file."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from in_toto.models.layout import Layout, Step
from in_toto.models.metadata import Envelope, Metablock
from securesystemslib.formats import encode_canonical
from securesystemslib.signer import CryptoSigner, SSlibKey

from app.verification.keyring import KeyLoadError, TrustedKey, key_ids, load_keys, spki_key_id
from tests.verification.test_dsse import KEY_KINDS, KeyPair, cached_key, new_key


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def sslib_key(key: KeyPair, scheme: str | None = None) -> SSlibKey:
    return SSlibKey.from_crypto(key.public, scheme=scheme or key.scheme)


def legacy_keyid(key: SSlibKey, public: str | None = None) -> str:
    """How securesystemslib < 1.0 and in-toto-golang compute ids."""
    value = public if public is not None else key.keyval["public"].strip()
    data = {
        "keytype": key.keytype,
        "scheme": key.scheme,
        "keyid_hash_algorithms": ["sha256", "sha512"],
        "keyval": {"public": value},
    }
    return hashlib.sha256(encode_canonical(data).encode()).hexdigest()


def load_error(policy_dir: Path, *fragments: str) -> KeyLoadError:
    with pytest.raises(KeyLoadError) as info:
        load_keys(policy_dir)
    for fragment in fragments:
        assert fragment in str(info.value)
    return info.value


# -- PEM files and key id styles ----------------------------------------------------------------


@pytest.mark.parametrize("kind", KEY_KINDS)
def test_pem_key_indexed_under_every_id_style(tmp_path: Path, kind: str) -> None:
    key = cached_key(kind)
    write(tmp_path / "keys" / "release.pub", key.public_pem())
    keys = load_keys(tmp_path)

    digest = hashlib.sha256(
        key.public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).digest()
    expected = {
        digest.hex(),  # cosign / sigstore-go
        base64.b64encode(digest).decode(),  # sigstore bundle publicKey.hint
        "SHA256:" + base64.b64encode(digest).decode().rstrip("="),  # npm registry
        sslib_key(key).keyid,  # securesystemslib >= 1.0, in-toto 2+
        legacy_keyid(sslib_key(key)),  # in-toto-golang, securesystemslib < 1.0
    }
    assert expected <= set(keys)
    canonical = keys[digest.hex()]
    assert canonical.key_id == key.key_id == spki_key_id(key.public)
    assert canonical.source == f"{tmp_path.name}/keys/release.pub"
    assert canonical.public_key_pem == key.public_pem().decode()
    natural = "rsa" if kind.startswith("rsa") else kind
    assert canonical.algorithm == natural
    # The securesystemslib id says which scheme (so which RSA padding) the signer used.
    assert keys[sslib_key(key).keyid].algorithm == kind


def test_rsa_pem_gets_ids_for_both_paddings(tmp_path: Path) -> None:
    key = cached_key("rsa-pss")
    write(tmp_path / "keys" / "k.pem", key.public_pem())
    keys = load_keys(tmp_path)
    assert keys[sslib_key(key, "rsassa-pss-sha256").keyid].algorithm == "rsa-pss"
    assert keys[sslib_key(key, "rsa-pkcs1v15-sha256").keyid].algorithm == "rsa-pkcs1v15"


def test_p521_is_supported_with_sha512(tmp_path: Path) -> None:
    private = ec.generate_private_key(ec.SECP521R1())
    write(tmp_path / "keys" / "p521.pem", KeyPair("ecdsa-p256", private).public_pem())
    [key] = {k.key_id: k for k in load_keys(tmp_path).values()}.values()
    assert key.algorithm == "ecdsa-p521"
    signature = private.sign(b"data", ec.ECDSA(hashes.SHA512()))
    assert key.verify(signature, b"data")
    assert not key.verify(private.sign(b"data", ec.ECDSA(hashes.SHA256())), b"data")


def test_several_pem_blocks_and_subdirectories(tmp_path: Path) -> None:
    a, b, c = cached_key("ecdsa-p256"), cached_key("ed25519"), cached_key("ecdsa-p384")
    write(tmp_path / "keys" / "team" / "both.pem", a.public_pem() + b"\n" + b.public_pem())
    write(tmp_path / "keys" / "c.pub", c.public_pem())
    keys = load_keys(tmp_path)
    assert {a.key_id, b.key_id, c.key_id} <= set(keys)
    assert keys[a.key_id].source.endswith("keys/team/both.pem")


def test_openssh_public_key(tmp_path: Path) -> None:
    key = cached_key("ed25519")
    ssh = key.public.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    write(tmp_path / "keys" / "id_ed25519.pub", ssh + b" ci@example\n")
    assert load_keys(tmp_path)[key.key_id].algorithm == "ed25519"


def test_other_files_are_ignored_and_missing_dirs_are_empty(tmp_path: Path) -> None:
    assert load_keys(tmp_path) == {}
    write(tmp_path / "keys" / "README.md", "# keys")
    write(tmp_path / "keys" / ".hidden.pub", "junk")
    write(tmp_path / "layouts" / "notes.txt", "junk")
    assert load_keys(tmp_path) == {}


def test_one_key_from_two_files_is_fine(tmp_path: Path) -> None:
    key = cached_key("ecdsa-p256")
    write(tmp_path / "keys" / "a.pub", key.public_pem())
    write(tmp_path / "keys" / "b.pub", key.public_pem())
    assert load_keys(tmp_path)[key.key_id].source.endswith("keys/a.pub")


def test_key_ids_function_is_pure() -> None:
    key = cached_key("ed25519")
    ids = key_ids(key.public, "ed25519")
    assert ids[key.key_id] == "ed25519"
    assert ids[sslib_key(key).keyid] == "ed25519"


# -- securesystemslib / in-toto JSON keys -------------------------------------------------------


@pytest.mark.parametrize("kind", KEY_KINDS)
def test_sslib_json_key_uses_its_scheme(tmp_path: Path, kind: str) -> None:
    key = cached_key(kind)
    data = sslib_key(key).to_dict()
    data["keyid"] = "custom-id"
    write(tmp_path / "keys" / "k.json", json.dumps(data))
    keys = load_keys(tmp_path)
    assert keys["custom-id"].algorithm == kind
    assert keys[key.key_id].algorithm == kind
    assert keys[sslib_key(key).keyid].key_id == key.key_id


def test_legacy_json_key_file_with_keyid_hash_algorithms(tmp_path: Path) -> None:
    key = cached_key("ed25519")
    sk = sslib_key(key)
    data = {
        "keytype": "ed25519",
        "scheme": "ed25519",
        "keyid_hash_algorithms": ["sha256", "sha512"],
        "keyval": {"public": sk.keyval["public"], "private": ""},
    }
    write(tmp_path / "keys" / "bob.pub", json.dumps(data))  # in-toto-keygen writes .pub JSON
    assert legacy_keyid(sk) in load_keys(tmp_path)


def test_legacy_ecdsa_keytype_spelling(tmp_path: Path) -> None:
    key = cached_key("ecdsa-p256")
    pem = key.public_pem().decode()
    legacy = {
        "keytype": "ecdsa-sha2-nistp256",  # securesystemslib < 0.20
        "scheme": "ecdsa-sha2-nistp256",
        "keyid_hash_algorithms": ["sha256", "sha512"],
        "keyval": {"public": pem},
    }
    expected = hashlib.sha256(encode_canonical(legacy).encode()).hexdigest()
    write(tmp_path / "keys" / "k.pem", pem)
    assert load_keys(tmp_path)[expected].algorithm == "ecdsa-p256"


def test_json_mapping_of_keyid_to_key(tmp_path: Path) -> None:
    a, b = cached_key("ecdsa-p256"), cached_key("ed25519")
    mapping = {"id-a": sslib_key(a).to_dict(), "id-b": sslib_key(b).to_dict()}
    write(tmp_path / "keys" / "keys.json", json.dumps({"keys": mapping}))
    keys = load_keys(tmp_path)
    assert keys["id-a"].key_id == a.key_id
    assert keys["id-b"].key_id == b.key_id


# -- layouts ------------------------------------------------------------------------------------


def make_layout(*functionaries: KeyPair) -> Layout:
    layout = Layout()
    for index, key in enumerate(functionaries):
        sk = sslib_key(key)
        layout.add_functionary_key(sk.to_dict() | {"keyid": sk.keyid})
        layout.steps.append(Step(name=f"step{index}", pubkeys=[sk.keyid]))
    return layout


@pytest.mark.parametrize("form", ["classic", "dsse"])
def test_layout_functionary_keys(tmp_path: Path, form: str) -> None:
    owner, bob, carl = cached_key("ed25519"), cached_key("rsa-pss"), cached_key("ecdsa-p384")
    layout = make_layout(bob, carl)
    signer = CryptoSigner(owner.private)
    if form == "classic":
        metadata: Metablock | Envelope = Metablock(signed=layout)
    else:
        metadata = Envelope.from_signable(layout)
    metadata.create_signature(signer)
    metadata.dump(str(write(tmp_path / "layouts" / "root.layout", b"")))
    keys = load_keys(tmp_path)
    for key in (bob, carl):
        layout_id = sslib_key(key).keyid
        assert keys[layout_id].key_id == key.key_id
        assert keys[layout_id].algorithm == key.kind
        assert keys[key.key_id].source.endswith("layouts/root.layout")
    # The layout's signer is the owner, not a functionary: not trusted for links.
    assert owner.key_id not in keys


def test_layout_keyid_is_used_as_written(tmp_path: Path) -> None:
    key = cached_key("ecdsa-p256")
    body = {
        "_type": "layout",
        "expires": "2036-01-01T00:00:00Z",
        "readme": "",
        "keys": {"ab" * 32: sslib_key(key).to_dict() | {"keyid": "ab" * 32}},
        "steps": [],
        "inspect": [],
    }
    write(tmp_path / "layouts" / "x.layout", json.dumps({"signed": body, "signatures": []}))
    assert load_keys(tmp_path)["ab" * 32].key_id == key.key_id


def test_keys_dir_comes_before_layouts(tmp_path: Path) -> None:
    key = cached_key("ecdsa-p256")
    write(tmp_path / "keys" / "k.pub", key.public_pem())
    make_layout(key)
    metadata = Metablock(signed=make_layout(key))
    metadata.dump(str(write(tmp_path / "layouts" / "a.layout", b"")))
    keys = load_keys(tmp_path)
    assert keys[key.key_id].source.endswith("keys/k.pub")
    assert keys[sslib_key(key).keyid].key_id == key.key_id


# -- bad files: the error names the file --------------------------------------------------------


def _private_pem() -> bytes:
    return cached_key("ecdsa-p256").private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _certificate_pem() -> bytes:
    import datetime

    from cryptography import x509
    from cryptography.x509.oid import NameOID

    key = cached_key("ecdsa-p256")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ci")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public)
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key.private, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def _pem(public: Any) -> bytes:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("priv.pem", lambda: _private_pem(), "private key"),
        ("cert.pem", lambda: _certificate_pem(), "certificate"),
        ("garbage.pub", lambda: b"hello", "not a PEM public key"),
        ("trunc.pem", lambda: b"-----BEGIN PUBLIC KEY-----\nMFkw\n", "no complete PEM block"),
        (
            "bad.pem",
            lambda: b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
            "not a usable public key",
        ),
        ("bad.json", lambda: b"{not json", "invalid JSON"),
        ("list.json", lambda: b'{"a": 1}', "neither a securesystemslib key"),
        (
            "k256.pem",
            lambda: _pem(ec.generate_private_key(ec.SECP256K1()).public_key()),
            "unsupported elliptic curve secp256k1",
        ),
        (
            "weak.pem",
            lambda: _pem(rsa.generate_private_key(65537, 1024).public_key()),
            "too weak",
        ),
        (
            "sha512.json",
            lambda: json.dumps(
                sslib_key(cached_key("rsa-pss")).to_dict() | {"scheme": "rsassa-pss-sha512"}
            ),
            "unsupported signing scheme",
        ),
        (
            "mismatch.json",
            lambda: json.dumps(sslib_key(cached_key("ed25519")).to_dict() | {"keytype": "rsa"}),
            "bad public key value",
        ),
        (
            "private.json",
            lambda: json.dumps(
                {
                    "keytype": "ed25519",
                    "scheme": "ed25519",
                    "keyval": {"public": "00" * 32, "private": "11" * 32},
                }
            ),
            "private key",
        ),
        (
            "pgp.json",
            lambda: json.dumps(
                {
                    "keyid": "x",
                    "type": "rsa",
                    "method": "pgp+rsa-pkcsv1.5",
                    "keyval": {"public": {}},
                }
            ),
            "OpenPGP",
        ),
    ],
)
def test_bad_key_file(tmp_path: Path, name: str, content: Any, fragment: str) -> None:
    write(tmp_path / "keys" / name, content())
    error = load_error(tmp_path, f"{tmp_path.name}/keys/{name}", fragment)
    assert error.source == f"{tmp_path.name}/keys/{name}"


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"[]", "not an in-toto layout"),
        (json.dumps({"signed": {"_type": "link"}, "signatures": []}), "not an in-toto layout"),
        (json.dumps({"payload": "%%", "payloadType": "x"}), "not base64 JSON"),
        (
            json.dumps({"signed": {"_type": "layout", "expires": "soon"}, "signatures": []}),
            "invalid in-toto layout",
        ),
    ],
)
def test_bad_layout(tmp_path: Path, content: Any, fragment: str) -> None:
    write(tmp_path / "layouts" / "root.layout", content)
    load_error(tmp_path, "layouts/root.layout", fragment)


def test_one_keyid_for_two_keys_is_refused(tmp_path: Path) -> None:
    a, b = cached_key("ecdsa-p256"), cached_key("ed25519")
    write(tmp_path / "keys" / "a.json", json.dumps(sslib_key(a).to_dict() | {"keyid": "shared"}))
    write(tmp_path / "keys" / "b.json", json.dumps(sslib_key(b).to_dict() | {"keyid": "shared"}))
    load_error(tmp_path, "keys/b.json", "shared", "keys/a.json")


# -- TrustedKey.verify --------------------------------------------------------------------------


def test_verify_rejects_other_key_and_other_data() -> None:
    key, other = new_key("ed25519"), cached_key("ed25519")
    trusted = TrustedKey(key.key_id, "ed25519", key.public, key.public_pem().decode(), "t")
    signature = key.sign(b"data")
    assert trusted.verify(signature, b"data")
    assert not trusted.verify(signature, b"date")
    assert not trusted.verify(other.sign(b"data"), b"data")
    assert trusted.verifying_algorithm(signature, b"data") == "ed25519"
    assert trusted.verifying_algorithm(signature, b"date") is None


def test_ed25519_key_cannot_be_given_an_rsa_scheme(tmp_path: Path) -> None:
    data = sslib_key(cached_key("ed25519")).to_dict() | {"scheme": "rsassa-pss-sha256"}
    write(tmp_path / "keys" / "k.json", json.dumps(data))
    load_error(tmp_path, "does not fit")


def test_ed25519_raw_hex_json(tmp_path: Path) -> None:
    private = ed25519.Ed25519PrivateKey.generate()
    raw = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    data = {"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": raw.hex()}}
    write(tmp_path / "keys" / "k.json", json.dumps(data))
    expected = hashlib.sha256(encode_canonical(data).encode()).hexdigest()
    assert load_keys(tmp_path)[expected].algorithm == "ed25519"
