"""The in-toto layout cases of ../shared/testdata (in-toto, in-toto-golang, derived) reach the
outcome their upstream suites expect, apart from inspections, which are never run here and are
reported as skipped instead.

Links are handed over as ingest would store them: a link file counts when one of its signatures
verifies with a functionary key of the layout (ingest trusts those keys), and the signer facts
carry that key. The image is the final step's product, as the engine asks for it.

Deliberate differences from upstream, asserted as such:
- Outcomes that depend on running an inspection (a failing inspection command, an inspection
  rule) pass here, with the inspection listed as skipped.
- A layout without steps verifies in in-toto but admits no image here: nothing in it ties an
  image to the supply chain. Its signature and expiry still verify (the failure comes after).
- A layout the owner keys do not verify does not even load; a requirement built directly
  fails with in-toto's SignatureVerificationError.
"""

from __future__ import annotations

import base64
import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from securesystemslib.formats import encode_canonical
from securesystemslib.signer import Key, Signature

from app.policy.facts import StoredAttestation
from app.policy.layouts import (
    LayoutRequirement,
    check_layout,
    load_layout_requirement,
    read_layout_document,
    sslib_key,
)
from app.verification.facts import SignerFacts, Subject

TESTDATA = Path(__file__).resolve().parents[3] / "shared" / "testdata"

if not (TESTDATA / "manifest.json").is_file():
    pytest.skip(f"shared test data not found at {TESTDATA}", allow_module_level=True)

UPLOADED = datetime(2024, 1, 1, tzinfo=UTC)


def _cases() -> list[dict[str, Any]]:
    manifest = json.loads((TESTDATA / "manifest.json").read_text())
    return [case for case in manifest["cases"] if case["kind"] == "intoto-layout"]


CASES = _cases()


def _depends_on_inspection(case: dict[str, Any]) -> bool:
    recipe = (case.get("derived") or {}).get("recipe", "")
    return case.get("expected_error") == "BadReturnValueError" or "inspect[" in recipe


def _stored_link(
    path: Path, functionary_keys: dict[str, dict[str, Any]]
) -> StoredAttestation | None:
    """The link as ingest stores it, or None when no functionary key verifies it."""
    data = json.loads(path.read_text())
    if "signed" in data:
        body = data["signed"]
        message = encode_canonical(body).encode()
        signatures = [Signature.from_dict(copy.deepcopy(s)) for s in data["signatures"]]
    else:
        body = json.loads(base64.b64decode(data["payload"]))
        payload = base64.b64decode(data["payload"])
        message = b"DSSEv1 %d %s %d %s" % (
            len(data["payloadType"]),
            data["payloadType"].encode(),
            len(payload),
            payload,
        )
        signatures = [
            Signature(s["keyid"], base64.b64decode(s["sig"]).hex()) for s in data["signatures"]
        ]
    if body.get("_type") != "link":
        return None
    signers = []
    for keyid, key_dict in functionary_keys.items():
        for signature in signatures:
            try:
                Key.from_dict(signature.keyid, copy.deepcopy(key_dict)).verify_signature(
                    signature, message
                )
            except Exception:  # any failure means "not this key"
                continue
            key = sslib_key(key_dict, keyid)
            signers.append(SignerFacts(kind="key", key_id=key.key_id))
            break
    if not signers:
        return None
    return StoredAttestation(
        id=path.name,
        format="intoto-link",
        content_kind="link",
        predicate_type="https://in-toto.io/Link/v1",
        signers=signers,
        trust_root=None,
        statement=body,
        subjects=[Subject(name, digests) for name, digests in body["products"].items()],
        uploaded_at=UPLOADED,
    )


def _links(
    case: dict[str, Any], functionary_keys: dict[str, dict[str, Any]]
) -> list[StoredAttestation]:
    files = case["files"]
    if "link_dir" in files:
        paths = sorted((TESTDATA / files["link_dir"]).glob("*.link"))
    else:
        omitted = set(case.get("omit_links") or [])
        paths = [TESTDATA / p for p in files["links"] if Path(p).name not in omitted]
    links = [_stored_link(path, functionary_keys) for path in paths]
    return [link for link in links if link is not None]


def _image(layout: Any, links: list[StoredAttestation]) -> tuple[str, str]:
    """A product of the final step's link: what the engine would ask about."""
    if layout.steps:
        final = layout.steps[-1].name
        for link in links:
            if link.statement and link.statement["name"] == final:
                digests = next(iter(link.statement["products"].values()))
                return "sha256", digests["sha256"]
    return "sha256", "0" * 64


def test_cases_were_found() -> None:
    assert len(CASES) >= 22


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_case_reaches_expected_outcome(case: dict[str, Any]) -> None:
    if case.get("network_required"):
        pytest.skip(f"needs the network: {case['network_required']}")
    files = case["files"]
    document = read_layout_document(TESTDATA / files["layout"])
    layout = document.layout()
    links = _links(case, layout.keys)
    image = _image(layout, links)
    now = (
        datetime.fromisoformat(case["mock_now"].replace("Z", "+00:00"))
        if case.get("mock_now")
        else datetime.now(UTC)
    )
    spec = {"file": files["layout"], "keys": files["layout_keys"], "inspections": "skip"}
    expected_error = case.get("expected_error")

    if expected_error == "SignatureVerificationError":
        with pytest.raises(ValueError, match=r"owner key|layout\.keys"):
            load_layout_requirement(spec, TESTDATA)
        requirement = LayoutRequirement(
            TESTDATA / files["layout"], [TESTDATA / k for k in files["layout_keys"]], True
        )
    else:
        requirement = load_layout_requirement(spec, TESTDATA)
    result = check_layout(requirement, links, image, now)
    skipped = [i["name"] for i in result.details["skipped_inspections"]]

    if not layout.steps and case["expected"] == "pass":
        assert not result.passed
        assert result.details["error"] == "EmptyLayout", result.reason
        return
    if case["expected"] == "pass" or _depends_on_inspection(case):
        assert result.passed, result.reason
        # Every inspection the layout declares is reported, never run.
        assert skipped == [i.name for i in layout.inspect]
        if layout.inspect:
            assert "skipped, never run" in result.reason
        return
    assert not result.passed
    assert result.details["error"] == expected_error, result.reason
