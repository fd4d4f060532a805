"""The small parts of the registry client: challenges, Retry-After, credentials, references."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from app.registry.client import is_loopback, parse_challenge, retry_after
from app.registry.cosign import check_simple_signing
from app.registry.credentials import Keychain, parse_docker_config, registry_key
from app.registry.errors import RegistryError
from app.registry.service import parse_reference


def test_a_bearer_challenge_is_read_with_its_quoted_parameters() -> None:
    scheme, params = parse_challenge(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/nginx:pull"'
    )
    assert scheme == "bearer"
    assert params == {
        "realm": "https://auth.docker.io/token",
        "service": "registry.docker.io",
        "scope": "repository:library/nginx:pull",
    }


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after("7") == 7.0
    assert retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert retry_after("soon") is None and retry_after(None) is None


def test_docker_hub_references_and_credentials_use_one_name() -> None:
    ref = parse_reference("nginx:1.25")
    assert (ref.registry, ref.repository, ref.tag) == ("docker.io", "library/nginx", "1.25")
    assert registry_key("https://index.docker.io/v1/") == "docker.io"
    assert registry_key("http://127.0.0.1:5000/v2/") == "127.0.0.1:5000"
    with pytest.raises(RegistryError) as caught:
        parse_reference("Not An Image")
    assert caught.value.code == "invalid_reference"


def test_a_docker_config_gives_credentials_by_registry(tmp_path: Path) -> None:
    auth = base64.b64encode(b"ci:pa:ss").decode()
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "auths": {
                    "https://index.docker.io/v1/": {"auth": auth},
                    "ghcr.io": {"username": "bot", "password": "tok"},
                    "quay.io": {"identitytoken": "refresh"},
                }
            }
        )
    )
    keychain = Keychain(auth_file=config)

    hub = keychain.lookup("docker.io")
    assert hub is not None and (hub.username, hub.password) == ("ci", "pa:ss")
    assert "pa:ss" not in repr(hub)
    ghcr = keychain.lookup("ghcr.io")
    assert ghcr is not None and ghcr.username == "bot"
    quay = keychain.lookup("quay.io")
    assert quay is not None and quay.identity_token == "refresh"
    assert keychain.lookup("example.com") is None


def test_a_malformed_docker_config_says_where() -> None:
    with pytest.raises(ValueError, match=r"secret\.json"):
        parse_docker_config(b"[]", "secret.json")
    with pytest.raises(ValueError, match="not base64"):
        parse_docker_config(json.dumps({"auths": {"x": {"auth": "%%%"}}}), "c")


def test_pull_secret_names_never_become_paths(tmp_path: Path) -> None:
    keychain = Keychain(secrets_dir=tmp_path)
    assert keychain.lookup("ghcr.io", "../etc", ["passwd"]) is None
    assert keychain.lookup("ghcr.io", "shop", ["../../x"]) is None


def test_loopback_registries_are_recognised() -> None:
    assert is_loopback("127.0.0.1:5000") and is_loopback("localhost") and is_loopback("[::1]:5000")
    assert not is_loopback("10.0.0.1:5000") and not is_loopback("ghcr.io")


def test_a_simple_signing_payload_must_name_the_image() -> None:
    digest = "sha256:" + "a" * 64
    payload = {
        "critical": {
            "identity": {"docker-reference": "x"},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature",
        }
    }
    check_simple_signing(json.dumps(payload).encode(), digest)
    with pytest.raises(RegistryError) as caught:
        check_simple_signing(json.dumps(payload).encode(), "sha256:" + "b" * 64)
    assert caught.value.code == "image_digest_mismatch"
    payload["critical"]["type"] = "something else"
    with pytest.raises(RegistryError) as caught:
        check_simple_signing(json.dumps(payload).encode(), digest)
    assert caught.value.code == "registry_malformed"


def test_fetch_on_miss_settings_read_durations_and_stay_off_by_default() -> None:
    from pydantic import ValidationError

    from app.policy.schema import ImagePolicySpec, RegistrySource, parse_duration

    assert parse_duration("3s") == 3.0 and parse_duration("500ms") == 0.5
    assert parse_duration(2) == 2.0
    assert RegistrySource.model_validate({"fetchOnMiss": True, "timeout": "1.5s"}).timeout == 1.5
    with pytest.raises(ValidationError):
        RegistrySource.model_validate({"timeout": "soon"})
    with pytest.raises(ValidationError):
        RegistrySource.model_validate({"timeout": "45s"})  # beyond any webhook's timeout
    with pytest.raises(ValidationError):
        RegistrySource.model_validate({"fetchOnMis": True})  # a misspelt key is an error
    spec = ImagePolicySpec.model_validate({"images": ["x/**"], "require": [{}]})
    assert spec.source is None


def test_the_mutating_webhook_is_shipped_but_not_installed_by_default() -> None:
    import yaml

    deploy = Path(__file__).resolve().parents[2] / "deploy"
    config = yaml.safe_load((deploy / "registry" / "mutating-webhook.yaml").read_text())
    [hook] = config["webhooks"]
    assert config["kind"] == "MutatingWebhookConfiguration"
    assert hook["clientConfig"]["service"]["path"] == "/k8s/mutate"
    assert hook["failurePolicy"] == "Ignore" and hook["timeoutSeconds"] <= 5
    assert "registry/mutating-webhook.yaml" not in (deploy / "kustomization.yaml").read_text()
