"""``provenant policy lint`` and ``policy test``: offline, real verification, same engine."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from typer.testing import CliRunner

from app.policy.cli import policy_cli
from tests.policy.helpers import DIGEST, IMAGE, Key, config, policy, write

REPO_POLICIES = Path(__file__).resolve().parents[2] / "policies"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
runner = CliRunner()


def envelope(key: Key, digest: str = DIGEST, tamper: bool = False) -> dict[str, object]:
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "ghcr.io/acme/app", "digest": {"sha256": digest}}],
        "predicateType": "https://example.com/release/v1",
        "predicate": {"approved": True},
    }
    payload = json.dumps(statement).encode()
    pae = b"DSSEv1 %d %s %d %s" % (len(PAYLOAD_TYPE), PAYLOAD_TYPE.encode(), len(payload), payload)
    signature = key.private.sign(pae, ec.ECDSA(hashes.SHA256()))
    if tamper:
        payload = payload.replace(b"true", b"false")
    return {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": "", "sig": base64.b64encode(signature).decode()}],
    }


def release_dir(policy_dir: Path, key: Key) -> Path:
    write(policy_dir, "keys/release.pub", key.pem)
    authorities = "  authorities:\n    - {name: release, key: {file: keys/release.pub}}\n"
    require = (
        "  require:\n"
        "    - predicateType: https://example.com/release/v1\n"
        "      conditions: [{expression: 'predicate.approved == true', message: approved}]\n"
    )
    write(
        policy_dir, "p.yaml", policy(authorities=authorities, require=require) + "---\n" + config()
    )
    return policy_dir


def test_lint_accepts_the_shipped_examples() -> None:
    result = runner.invoke(policy_cli, ["lint", str(REPO_POLICIES)])
    assert result.exit_code == 0, result.output
    assert "ImagePolicy" in result.stdout


def test_lint_lists_every_error_and_exits_1(policy_dir: Path) -> None:
    write(policy_dir, "a.yaml", policy("a", images='["[x"]'))
    write(policy_dir, "b.yaml", policy("b", extra="  mode: loud\n"))
    result = runner.invoke(policy_cli, ["lint", str(policy_dir)])
    assert result.exit_code == 1
    assert "a.yaml:5: spec.images[0]: invalid image glob" in result.stderr
    assert "b.yaml:6: spec.mode:" in result.stderr
    assert "2 error(s)" in result.stderr


def test_lint_missing_directory_exits_2(tmp_path: Path) -> None:
    assert runner.invoke(policy_cli, ["lint", str(tmp_path / "none")]).exit_code == 2


def test_test_allows_with_a_verified_envelope(policy_dir: Path, tmp_path: Path) -> None:
    key = Key()
    directory = release_dir(policy_dir, key)
    file = tmp_path / "release.dsse.json"
    file.write_text(json.dumps(envelope(key)))
    args = ["test", str(directory), "--image", IMAGE, "--attestation", str(file)]
    result = runner.invoke(policy_cli, args)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("ALLOW")
    assert "passed" in result.stdout


def test_test_denies_and_explains(policy_dir: Path, tmp_path: Path) -> None:
    key = Key()
    directory = release_dir(policy_dir, key)
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(envelope(key, tamper=True)))
    stranger = tmp_path / "stranger.json"
    stranger.write_text(json.dumps(envelope(Key())))
    args = [
        "test",
        str(directory),
        "--image",
        IMAGE,
        "--attestation",
        str(tampered),
        "--attestation",
        str(stranger),
    ]
    result = runner.invoke(policy_cli, args)
    assert result.exit_code == 1
    assert result.stdout.startswith("DENY")
    assert f"rejected {tampered}" in result.stderr
    assert f"rejected {stranger}" in result.stderr
    assert "missing" in result.stdout  # neither was good enough to be stored


def test_test_json_output(policy_dir: Path, tmp_path: Path) -> None:
    key = Key()
    directory = release_dir(policy_dir, key)
    file = tmp_path / "e.json"
    file.write_text(json.dumps(envelope(key)))
    args = ["test", str(directory), "--image", IMAGE, "--attestation", str(file), "--json"]
    result = runner.invoke(policy_cli, args)
    body = json.loads(result.stdout)
    assert body["allowed"] is True
    assert body["images"][0]["policies"][0]["requirements"][0]["attestations"]


def test_test_tag_only_image_is_denied(policy_dir: Path) -> None:
    directory = release_dir(policy_dir, Key())
    result = runner.invoke(policy_cli, ["test", str(directory), "--image", "ghcr.io/acme/app:v1"])
    assert result.exit_code == 1
    assert "has no digest" in result.stdout


def test_test_bad_reference_exits_2(policy_dir: Path) -> None:
    directory = release_dir(policy_dir, Key())
    result = runner.invoke(policy_cli, ["test", str(directory), "--image", "Not A Ref"])
    assert result.exit_code == 2


def test_lint_refuses_an_slsa_block_without_builder_id(policy_dir: Path) -> None:
    require = (
        "  require:\n"
        "    - predicateType: https://slsa.dev/provenance/v1\n"
        "      slsa:\n"
        "        sourceUri: github.com/acme/app\n"
    )
    write(policy_dir, "p.yaml", policy(require=require))
    result = runner.invoke(policy_cli, ["lint", str(policy_dir)])
    assert result.exit_code == 1
    assert "p.yaml:15: spec.require[0].slsa" in result.stderr
    assert "builderId: required" in result.stderr
    assert "{any: true}" in result.stderr


def test_lint_accepts_any_builder_stated_explicitly(policy_dir: Path) -> None:
    require = (
        "  require:\n"
        "    - predicateType: https://slsa.dev/provenance/v1\n"
        "      slsa: {builderId: {any: true}, sourceUri: github.com/acme/app}\n"
    )
    write(policy_dir, "p.yaml", policy(require=require))
    result = runner.invoke(policy_cli, ["lint", str(policy_dir)])
    assert result.exit_code == 0, result.output
