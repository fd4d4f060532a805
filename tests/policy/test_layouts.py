"""in-toto layout requirements (app.policy.layouts): loading, and one failing test per rule.

Layouts are built and signed here with the in-toto library; links are given as the verified
facts ingest stores (signer key ids), as the engine hands them over.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from in_toto.models.layout import Inspection, Layout, Step
from in_toto.models.metadata import Envelope, Metablock
from securesystemslib.signer import CryptoSigner, SSlibKey

from app.policy.facts import StoredAttestation
from app.policy.layouts import LayoutRequirement, check_layout, load_layout_requirement
from app.verification.facts import SignerFacts, Subject
from app.verification.keyring import spki_key_id

NOW = datetime(2030, 1, 1, tzinfo=UTC)
REPO_POLICIES = Path(__file__).resolve().parents[2] / "policies"
_ids = itertools.count()


def h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


IMAGE = ("sha256", h("image manifest"))
SRC, MAKEFILE, MAKEFILE2, TMP, BIN = (h(x) for x in ("src", "mk", "mk2", "tmp", "bin"))


@dataclass
class Functionary:
    signer: CryptoSigner
    key: dict[str, Any]  # the key as a layout lists it (with keyid)
    facts: SignerFacts  # what ingest records for a link it signed
    pem: bytes

    @property
    def keyid(self) -> str:
        return self.key["keyid"]


def functionary(kind: str = "ed25519") -> Functionary:
    private = (
        ec.generate_private_key(ec.SECP256R1())
        if kind == "ecdsa"
        else ed25519.Ed25519PrivateKey.generate()
    )
    public = private.public_key()
    sslib = SSlibKey.from_crypto(public)
    key = {**sslib.to_dict(), "keyid": sslib.keyid}
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    facts = SignerFacts(
        kind="key", key_id=spki_key_id(public), key_algorithm=kind, public_key_pem=pem.decode()
    )
    return Functionary(CryptoSigner(private, sslib), key, facts, pem)


OWNER, OTHER_OWNER = functionary(), functionary("ecdsa")
ALICE, BOB, CARL, DAVE, EVE = (functionary() for _ in range(5))


def step(
    name: str,
    who: list[Functionary],
    materials: list[list[str]] | None = None,
    products: list[list[str]] | None = None,
    threshold: int = 1,
    command: list[str] | None = None,
) -> Step:
    return Step(
        name=name,
        pubkeys=[f.keyid for f in who],
        threshold=threshold,
        expected_materials=materials or [],
        expected_products=products or [],
        expected_command=command or [],
    )


def chain_steps() -> list[Step]:
    """source -> build -> package (two functionaries), using every rule type once."""
    return [
        step("source", [ALICE], products=[["CREATE", "src/app.py"], ["DISALLOW", "*"]]),
        step(
            "build",
            [BOB],
            materials=[
                ["MATCH", "src/app.py", "WITH", "PRODUCTS", "FROM", "source"],
                ["DELETE", "tmp.o"],
                ["ALLOW", "Makefile"],
                ["DISALLOW", "*"],
            ],
            products=[
                ["REQUIRE", "app.bin"],
                ["CREATE", "app.bin"],
                ["MODIFY", "Makefile"],
                ["ALLOW", "src/app.py"],
                ["DISALLOW", "*"],
            ],
        ),
        step(
            "package",
            [CARL, DAVE],
            threshold=2,
            materials=[
                ["MATCH", "app.bin", "WITH", "PRODUCTS", "FROM", "build"],
                ["DISALLOW", "*"],
            ],
            products=[["CREATE", "ghcr.io/acme/app"], ["DISALLOW", "*"]],
            command=["docker", "build", "."],
        ),
    ]


def write_layout(
    policy_dir: Path,
    steps: list[Step],
    *,
    signers: tuple[Functionary, ...] = (OWNER,),
    expires: str = "2036-01-01T00:00:00Z",
    inspect: list[Inspection] | None = None,
    name: str = "root.layout",
    dsse: bool = False,
    keys: list[Functionary] | None = None,
) -> str:
    layout = Layout(expires=expires, readme="test")
    for f in keys if keys is not None else [ALICE, BOB, CARL, DAVE]:
        layout.add_functionary_key(dict(f.key))
    layout.steps = steps
    layout.inspect = inspect or []
    layout.validate()
    metadata = Envelope.from_signable(layout) if dsse else Metablock(signed=layout)
    for signer in signers:
        metadata.create_signature(signer.signer)
    path = policy_dir / "layouts" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metadata.to_dict()))
    return f"layouts/{name}"


def write_key(policy_dir: Path, who: Functionary = OWNER, name: str = "owner.pub") -> str:
    path = policy_dir / "keys" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(who.pem)
    return f"keys/{name}"


def link(
    name: str,
    materials: dict[str, str],
    products: dict[str, str],
    *signers: Functionary,
    command: list[str] | None = None,
    uploaded: datetime = NOW - timedelta(days=1),
    revoked: bool = False,
) -> StoredAttestation:
    body = {
        "_type": "link",
        "name": name,
        "command": command or [],
        "materials": {path: {"sha256": digest} for path, digest in materials.items()},
        "products": {path: {"sha256": digest} for path, digest in products.items()},
        "byproducts": {},
        "environment": {},
    }
    return StoredAttestation(
        id=f"link-{next(_ids)}-{name}",
        format="intoto-link",
        content_kind="link",
        predicate_type="https://in-toto.io/Link/v1",
        signers=[s.facts for s in signers],
        trust_root=None,
        statement=body,
        subjects=[Subject(path, {"sha256": d}) for path, d in products.items()],
        uploaded_at=uploaded,
        revoked=revoked,
    )


def chain_links(image: str = IMAGE[1], **kwargs: Any) -> list[StoredAttestation]:
    package_materials = {"app.bin": BIN}
    return [
        link("source", {}, {"src/app.py": SRC}, ALICE, **kwargs),
        link(
            "build",
            {"src/app.py": SRC, "Makefile": MAKEFILE, "tmp.o": TMP},
            {"src/app.py": SRC, "app.bin": BIN, "Makefile": MAKEFILE2},
            BOB,
            **kwargs,
        ),
        link("package", package_materials, {"ghcr.io/acme/app": image}, CARL, **kwargs),
        link("package", package_materials, {"ghcr.io/acme/app": image}, DAVE, **kwargs),
    ]


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    return tmp_path / "policies"


def load(policy_dir: Path, **spec: Any) -> LayoutRequirement:
    spec.setdefault("keys", [write_key(policy_dir)])
    return load_layout_requirement(spec, policy_dir)


def assert_fails(result, error: str, *words: str) -> None:
    assert not result.passed, result.reason
    assert result.details["error"] == error, (result.details["error"], result.reason)
    for word in words:
        assert word in result.reason, (word, result.reason)


# -- the whole chain ------------------------------------------------------------------------


def test_chain_passes(policy_dir: Path) -> None:
    req = load(policy_dir, file=write_layout(policy_dir, chain_steps()))
    links = chain_links()
    result = check_layout(req, links, IMAGE, NOW)
    assert result.passed, result.reason
    assert "is a product of the final step 'package'" in result.reason
    assert sorted(result.details["links"]) == sorted(a.id for a in links)
    assert set(result.details["links_by_step"]) == {"source", "build", "package"}
    assert result.details["skipped_inspections"] == []


def test_dsse_layout_passes(policy_dir: Path) -> None:
    req = load(policy_dir, file=write_layout(policy_dir, chain_steps(), dsse=True))
    assert check_layout(req, chain_links(), IMAGE, NOW).passed


def test_layout_signed_by_two_owners_needs_both_keys_to_verify(policy_dir: Path) -> None:
    file = write_layout(policy_dir, chain_steps(), signers=(OWNER, OTHER_OWNER))
    keys = [write_key(policy_dir), write_key(policy_dir, OTHER_OWNER, "other.pub")]
    req = load(policy_dir, file=file, keys=keys)
    assert check_layout(req, chain_links(), IMAGE, NOW).passed


def test_command_misalignment_is_reported_not_fatal(policy_dir: Path) -> None:
    req = load(policy_dir, file=write_layout(policy_dir, chain_steps()))
    links = chain_links()
    links[2] = replace(links[2], statement={**links[2].statement, "command": ["podman", "build"]})
    links[3] = replace(links[3], statement={**links[3].statement, "command": ["podman", "build"]})
    result = check_layout(req, links, IMAGE, NOW)
    assert result.passed, result.reason
    assert result.details["command_mismatches"][0]["found"] == ["podman", "build"]


# -- owner signature and expiry -------------------------------------------------------------


def test_layout_not_signed_by_the_owner(policy_dir: Path) -> None:
    file = write_layout(policy_dir, chain_steps(), signers=(OTHER_OWNER,))
    with pytest.raises(ValueError, match=r"no valid signature by owner key keys/owner\.pub"):
        load(policy_dir, file=file)
    req = LayoutRequirement(policy_dir / file, [policy_dir / write_key(policy_dir)], False)
    result = check_layout(req, chain_links(), IMAGE, NOW)
    assert_fails(result, "SignatureVerificationError", "not signed by owner key", "owner.pub")


def test_layout_changed_after_signing(policy_dir: Path) -> None:
    file = write_layout(policy_dir, chain_steps())
    path = policy_dir / file
    data = json.loads(path.read_text())
    data["signed"]["steps"][2]["threshold"] = 1
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="no valid signature"):
        load(policy_dir, file=file)
    req = LayoutRequirement(path, [policy_dir / write_key(policy_dir)], False)
    assert_fails(check_layout(req, chain_links(), IMAGE, NOW), "SignatureVerificationError")


def test_owner_key_listed_but_missing_signature(policy_dir: Path) -> None:
    file = write_layout(policy_dir, chain_steps())
    keys = [write_key(policy_dir), write_key(policy_dir, OTHER_OWNER, "other.pub")]
    with pytest.raises(ValueError, match=r"keys/other\.pub"):
        load(policy_dir, file=file, keys=keys)


def test_expired_layout(policy_dir: Path) -> None:
    req = load(
        policy_dir, file=write_layout(policy_dir, chain_steps(), expires="2030-01-01T00:00:00Z")
    )
    assert check_layout(req, chain_links(), IMAGE, NOW - timedelta(seconds=1)).passed
    # in-toto: a layout is expired at its expiry instant.
    assert_fails(check_layout(req, chain_links(), IMAGE, NOW), "LayoutExpiredError", "2030-01-01")
    assert_fails(
        check_layout(req, chain_links(), IMAGE, NOW + timedelta(days=1)), "LayoutExpiredError"
    )


# -- thresholds and functionaries -----------------------------------------------------------


def test_threshold_not_met(policy_dir: Path) -> None:
    req = load(policy_dir, file=write_layout(policy_dir, chain_steps()))
    links = chain_links()[:3]  # carl's package link only
    result = check_layout(req, links, IMAGE, NOW)
    assert_fails(result, "LinkNotFoundError", "'package'", "2 distinct", "found 1")


def test_threshold_not_met_by_an_unauthorized_signer(policy_dir: Path) -> None:
    req = load(policy_dir, file=write_layout(policy_dir, chain_steps()))
    links = chain_links()
    links[3] = link("package", {"app.bin": BIN}, {"ghcr.io/acme/app": IMAGE[1]}, EVE)
    result = check_layout(req, links, IMAGE, NOW)
    assert_fails(result, "ThresholdVerificationError", "'package'", "found 1")


def test_threshold_functionaries_must_agree(policy_dir: Path) -> None:
    req = load(policy_dir, file=write_layout(policy_dir, chain_steps()))
    links = chain_links()
    links[3] = link("package", {"app.bin": BIN, "x": SRC}, {"ghcr.io/acme/app": IMAGE[1]}, DAVE)
    assert_fails(check_layout(req, links, IMAGE, NOW), "ThresholdVerificationError", "disagree")


def test_one_key_listed_twice_counts_once(policy_dir: Path) -> None:
    steps = chain_steps()
    alias = {**CARL.key, "keyid": "f" * 64}
    steps[2] = replace_pubkeys(steps[2], [CARL.keyid, alias["keyid"]])
    layout = Layout(expires="2036-01-01T00:00:00Z")
    for key in (ALICE.key, BOB.key, CARL.key, alias):
        layout.add_functionary_key(dict(key))
    layout.steps = steps
    metablock = Metablock(signed=layout)
    metablock.create_signature(OWNER.signer)
    (policy_dir / "layouts").mkdir(parents=True)
    (policy_dir / "layouts" / "root.layout").write_text(json.dumps(metablock.to_dict()))
    req = load(policy_dir, file="layouts/root.layout")
    links = chain_links()[:3]
    assert_fails(check_layout(req, links, IMAGE, NOW), "LinkNotFoundError", "found 1")


def replace_pubkeys(old: Step, pubkeys: list[str]) -> Step:
    return Step(
        name=old.name,
        pubkeys=pubkeys,
        threshold=old.threshold,
        expected_materials=old.expected_materials,
        expected_products=old.expected_products,
        expected_command=old.expected_command,
    )


def test_link_by_an_unauthorized_functionary_does_not_count(policy_dir: Path) -> None:
    req = load(policy_dir, file=write_layout(policy_dir, chain_steps()))
    links = chain_links()
    links[1] = replace(links[1], signers=[EVE.facts])
    assert_fails(check_layout(req, links, IMAGE, NOW), "ThresholdVerificationError", "'build'")


def test_revoked_links_do_not_count(policy_dir: Path) -> None:
    req = load(policy_dir, file=write_layout(policy_dir, chain_steps()))
    links = chain_links()
    links[0] = replace(links[0], revoked=True)
    result = check_layout(req, links, IMAGE, NOW)
    assert_fails(result, "LinkNotFoundError", "'source'")
    assert any("revoked" in entry for entry in result.details["ignored_links"])


# -- artifact rules -------------------------------------------------------------------------

# (material rules, product rules, good (materials, products), bad (materials, products), words)
RULE_CASES = {
    "CREATE": (
        [],
        [["CREATE", "img"], ["DISALLOW", "*"]],
        ({}, {"img": IMAGE[1]}),
        ({"img": SRC}, {"img": IMAGE[1]}),
        ["DISALLOW *", "img"],
    ),
    "DELETE": (
        [["DELETE", "tmp.o"], ["DISALLOW", "*"]],
        [["ALLOW", "*"]],
        ({"tmp.o": TMP}, {"img": IMAGE[1]}),
        ({"tmp.o": TMP}, {"img": IMAGE[1], "tmp.o": TMP}),
        ["materials", "DISALLOW *", "tmp.o"],
    ),
    "MODIFY": (
        [["ALLOW", "*"]],
        [["MODIFY", "Makefile"], ["CREATE", "img"], ["DISALLOW", "*"]],
        ({"Makefile": MAKEFILE}, {"Makefile": MAKEFILE2, "img": IMAGE[1]}),
        ({"Makefile": MAKEFILE}, {"Makefile": MAKEFILE, "img": IMAGE[1]}),
        ["products", "DISALLOW *", "Makefile"],
    ),
    "ALLOW": (
        [],
        [["ALLOW", "img"], ["DISALLOW", "*"]],
        ({}, {"img": IMAGE[1]}),
        ({}, {"img": IMAGE[1], "debug.log": TMP}),
        ["DISALLOW *", "debug.log"],
    ),
    "DISALLOW": (
        [],
        [["DISALLOW", "*.key"], ["ALLOW", "*"]],
        ({}, {"img": IMAGE[1]}),
        ({}, {"img": IMAGE[1], "signing.key": TMP}),
        ["DISALLOW *.key", "signing.key"],
    ),
    "REQUIRE": (
        [],
        [["REQUIRE", "sbom.json"], ["ALLOW", "*"]],
        ({}, {"img": IMAGE[1], "sbom.json": TMP}),
        ({}, {"img": IMAGE[1]}),
        ["REQUIRE sbom.json"],
    ),
}


@pytest.mark.parametrize("rule", sorted(RULE_CASES))
def test_each_artifact_rule(policy_dir: Path, rule: str) -> None:
    materials, products, good, bad, words = RULE_CASES[rule]
    steps = [step("final", [BOB], materials=materials, products=products)]
    req = load(policy_dir, file=write_layout(policy_dir, steps))
    passing = check_layout(req, [link("final", *good, BOB)], IMAGE, NOW)
    assert passing.passed, passing.reason
    failing = check_layout(req, [link("final", *bad, BOB)], IMAGE, NOW)
    assert_fails(failing, "RuleVerificationError", "step 'final'", *words)


def test_match_rule_across_steps(policy_dir: Path) -> None:
    req = load(policy_dir, file=write_layout(policy_dir, chain_steps()))
    links = chain_links()
    build = links[1].statement
    build["materials"]["src/app.py"] = {"sha256": h("tampered")}
    result = check_layout(req, links, IMAGE, NOW)
    assert_fails(
        result, "RuleVerificationError", "step 'build' materials", "DISALLOW *", "src/app.py"
    )


# -- the image ------------------------------------------------------------------------------


def test_image_must_be_a_product_of_the_final_step(policy_dir: Path) -> None:
    req = load(policy_dir, file=write_layout(policy_dir, chain_steps()))
    other = ("sha256", h("another image"))
    result = check_layout(req, chain_links(), other, NOW)
    assert_fails(
        result, "ImageNotFinalProduct", other[1], "final step 'package'", "ghcr.io/acme/app"
    )


def test_image_produced_by_an_earlier_step_is_not_enough(policy_dir: Path) -> None:
    req = load(policy_dir, file=write_layout(policy_dir, chain_steps()))
    result = check_layout(req, chain_links(), ("sha256", BIN), NOW)
    assert_fails(result, "ImageNotFinalProduct", "final step 'package'")


def test_the_build_of_the_image_is_chosen_among_many(policy_dir: Path) -> None:
    req = load(policy_dir, file=write_layout(policy_dir, chain_steps()))
    old = chain_links(uploaded=NOW - timedelta(days=30))
    new_image = h("new image")
    new = [
        link("source", {}, {"src/app.py": h("src2")}, ALICE),
        link(
            "build",
            {"src/app.py": h("src2"), "Makefile": MAKEFILE, "tmp.o": TMP},
            {"src/app.py": h("src2"), "app.bin": h("bin2"), "Makefile": MAKEFILE2},
            BOB,
        ),
        link("package", {"app.bin": h("bin2")}, {"ghcr.io/acme/app": new_image}, CARL),
        link("package", {"app.bin": h("bin2")}, {"ghcr.io/acme/app": new_image}, DAVE),
    ]
    result = check_layout(req, new + old, IMAGE, NOW)
    assert result.passed, result.reason
    assert sorted(result.details["links"]) == sorted(a.id for a in old)
    assert check_layout(req, new + old, ("sha256", new_image), NOW).passed
    # The old image with the new build's source: no chain passes.
    mixed = [new[0], old[1], *old[2:]]
    assert_fails(check_layout(req, mixed, IMAGE, NOW), "RuleVerificationError", "src/app.py")


def test_image_digest_algorithm_and_case(policy_dir: Path) -> None:
    req = load(policy_dir, file=write_layout(policy_dir, chain_steps()))
    assert check_layout(req, chain_links(), ("SHA256", IMAGE[1].upper()), NOW).passed
    assert_fails(
        check_layout(req, chain_links(), ("sha512", IMAGE[1]), NOW), "ImageNotFinalProduct"
    )


def test_empty_layout_admits_nothing(policy_dir: Path) -> None:
    req = load(policy_dir, file=write_layout(policy_dir, []))
    assert_fails(check_layout(req, [], IMAGE, NOW), "EmptyLayout", "no steps")


def test_link_v03_statements(policy_dir: Path) -> None:
    steps = [step("final", [BOB], products=[["CREATE", "img"], ["DISALLOW", "*"]])]
    req = load(policy_dir, file=write_layout(policy_dir, steps))
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "img", "digest": {"sha256": IMAGE[1]}}],
        "predicateType": "https://in-toto.io/attestation/link/v0.3",
        "predicate": {"name": "final", "command": ["make"], "materials": []},
    }
    attestation = replace(link("final", {}, {}, BOB), statement=statement)
    assert check_layout(req, [attestation], IMAGE, NOW).passed


# -- inspections ----------------------------------------------------------------------------


def test_inspections_load_only_with_skip_and_never_run(policy_dir: Path, tmp_path: Path) -> None:
    marker = tmp_path / "inspection-ran"
    inspection = Inspection(name="untar", run=["touch", str(marker)])
    file = write_layout(policy_dir, chain_steps(), inspect=[inspection])
    with pytest.raises(ValueError, match=r"untar .*touch.*inspections: skip"):
        load(policy_dir, file=file)
    req = load(policy_dir, file=file, inspections="skip")
    result = check_layout(req, chain_links(), IMAGE, NOW)
    assert result.passed, result.reason
    assert "1 inspection(s) skipped" in result.reason
    [skipped] = result.details["skipped_inspections"]
    assert skipped["name"] == "untar" and skipped["run"] == ["touch", str(marker)]
    assert not marker.exists()


def test_inspections_in_a_directly_built_requirement_fail(policy_dir: Path) -> None:
    inspection = Inspection(name="untar", run=["tar", "xf", "x"])
    file = write_layout(policy_dir, chain_steps(), inspect=[inspection])
    req = LayoutRequirement(policy_dir / file, [policy_dir / write_key(policy_dir)], False)
    assert_fails(check_layout(req, chain_links(), IMAGE, NOW), "InspectionNotAllowed", "untar")


# -- sublayouts -----------------------------------------------------------------------------


def sublayout_setup(policy_dir: Path, signer: Functionary = BOB, **kwargs: Any) -> str:
    """build is delegated by bob to a sublayout with steps compile (carl) and link (dave)."""
    sub_steps = [
        step("compile", [CARL], products=[["CREATE", "app.o"], ["DISALLOW", "*"]]),
        step(
            "link",
            [DAVE],
            materials=[["MATCH", "app.o", "WITH", "PRODUCTS", "FROM", "compile"]],
            products=[["CREATE", "app.bin"], ["ALLOW", "app.o"], ["DISALLOW", "*"]],
        ),
    ]
    write_layout(
        policy_dir, sub_steps, signers=(signer,), name="build.layout", keys=[CARL, DAVE], **kwargs
    )
    steps = [
        step(
            "build", [BOB], products=[["CREATE", "app.bin"], ["ALLOW", "app.o"], ["DISALLOW", "*"]]
        ),
        step(
            "package",
            [ALICE],
            materials=[["MATCH", "app.bin", "WITH", "PRODUCTS", "FROM", "build"]],
            products=[["CREATE", "img"]],
        ),
    ]
    return write_layout(policy_dir, steps)


def sublayout_links() -> list[StoredAttestation]:
    return [
        link("compile", {}, {"app.o": SRC}, CARL),
        link("link", {"app.o": SRC}, {"app.o": SRC, "app.bin": BIN}, DAVE),
        link("package", {"app.bin": BIN}, {"img": IMAGE[1]}, ALICE),
    ]


def test_sublayout(policy_dir: Path) -> None:
    file = sublayout_setup(policy_dir)
    req = load(policy_dir, file=file, sublayouts={"build": "layouts/build.layout"})
    result = check_layout(req, sublayout_links(), IMAGE, NOW)
    assert result.passed, result.reason
    assert set(result.details["links_by_step"]) == {"build > compile", "build > link", "package"}


def test_sublayout_not_signed_by_the_step_functionary(policy_dir: Path) -> None:
    file = sublayout_setup(policy_dir, signer=EVE)
    req = load(policy_dir, file=file, sublayouts={"build": "layouts/build.layout"})
    result = check_layout(req, sublayout_links(), IMAGE, NOW)
    assert_fails(
        result, "ThresholdVerificationError", "'build'", "layouts/build.layout", "0 verify"
    )


def test_sublayout_expired(policy_dir: Path) -> None:
    file = sublayout_setup(policy_dir, expires="2029-01-01T00:00:00Z")
    req = load(policy_dir, file=file, sublayouts={"build": "layouts/build.layout"})
    result = check_layout(req, sublayout_links(), IMAGE, NOW)
    assert_fails(result, "LayoutExpiredError", "sublayout layouts/build.layout")


def test_sublayout_rules_apply(policy_dir: Path) -> None:
    file = sublayout_setup(policy_dir)
    req = load(policy_dir, file=file, sublayouts={"build": "layouts/build.layout"})
    links = sublayout_links()
    links[1].statement["products"]["debug"] = {"sha256": TMP}
    result = check_layout(req, links, IMAGE, NOW)
    assert_fails(result, "RuleVerificationError", "sublayout layouts/build.layout", "debug")


# -- parameters -----------------------------------------------------------------------------


def test_parameters_are_substituted(policy_dir: Path) -> None:
    steps = [step("final", [BOB], products=[["CREATE", "{IMAGE}"], ["DISALLOW", "*"]])]
    file = write_layout(policy_dir, steps)
    with pytest.raises(ValueError, match="parameter substitution failed"):
        load(policy_dir, file=file, parameters={"OTHER": "x"})
    req = load(policy_dir, file=file, parameters={"IMAGE": "img"})
    assert check_layout(req, [link("final", {}, {"img": IMAGE[1]}, BOB)], IMAGE, NOW).passed
    assert_fails(
        check_layout(req, [link("final", {}, {"other": IMAGE[1]}, BOB)], IMAGE, NOW),
        "RuleVerificationError",
    )


# -- the YAML mapping -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"file": "layouts/root.layout", "keys": ["keys/owner.pub"], "x": 1}, "layout.x"),
        ({"file": "layouts/root.layout", "keys": []}, "layout.keys"),
        ({"file": "layouts/root.layout"}, "layout.keys"),
        ({"file": "layouts/missing.layout", "keys": ["keys/owner.pub"]}, "layout.file"),
        ({"file": "../outside.layout", "keys": ["keys/owner.pub"]}, "outside the policy"),
        ({"file": "layouts/root.layout", "keys": ["keys/nope.pub"]}, r"layout.keys\[0\]"),
        (
            {"file": "layouts/root.layout", "keys": ["keys/owner.pub"], "inspections": "run"},
            "layout.inspections",
        ),
        (
            {
                "file": "layouts/root.layout",
                "keys": ["keys/owner.pub"],
                "sublayouts": {"nope": "layouts/root.layout"},
            },
            "layout.sublayouts.nope",
        ),
        ({"file": "keys/owner.pub", "keys": ["keys/owner.pub"]}, "keys/owner.pub"),
        ("layouts/root.layout", "mapping"),
    ],
)
def test_bad_specs(policy_dir: Path, spec: Any, message: str) -> None:
    write_layout(policy_dir, chain_steps())
    write_key(policy_dir)
    (policy_dir.parent / "outside.layout").write_text("{}")
    with pytest.raises(ValueError, match=message):
        load_layout_requirement(spec, policy_dir)


def test_private_owner_key_is_refused(policy_dir: Path) -> None:
    file = write_layout(policy_dir, chain_steps())
    private = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (policy_dir / "keys").mkdir()
    (policy_dir / "keys" / "owner.pem").write_bytes(private)
    with pytest.raises(ValueError, match="private key"):
        load_layout_requirement({"file": file, "keys": ["keys/owner.pem"]}, policy_dir)


def test_owner_key_as_securesystemslib_json(policy_dir: Path) -> None:
    file = write_layout(policy_dir, chain_steps())
    (policy_dir / "keys").mkdir()
    (policy_dir / "keys" / "owner.json").write_text(json.dumps(OWNER.key))
    req = load_layout_requirement({"file": file, "keys": ["keys/owner.json"]}, policy_dir)
    assert check_layout(req, chain_links(), IMAGE, NOW).passed


def test_decision_uses_the_files_as_loaded(policy_dir: Path) -> None:
    req = load(policy_dir, file=write_layout(policy_dir, chain_steps()))
    # Replaced on disk without a reload: the active policy set (and its hash) still hold.
    write_layout(policy_dir, [], signers=(OTHER_OWNER,))
    assert check_layout(req, chain_links(), IMAGE, NOW).passed


# -- the shipped example --------------------------------------------------------------------


def test_example_layout_loads(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    for name in ("layouts/example-release.layout", "keys/example-layout-owner.pub"):
        (policies / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_POLICIES / name, policies / name)
    req = load_layout_requirement(
        {"file": "layouts/example-release.layout", "keys": ["keys/example-layout-owner.pub"]},
        policies,
    )
    result = check_layout(req, [], IMAGE, NOW)
    assert_fails(result, "LinkNotFoundError", "'build'")
