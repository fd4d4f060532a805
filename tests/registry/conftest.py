from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.db import Database
from app.registry.client import RegistryClient
from app.registry.credentials import Keychain
from app.registry.service import RegistryService
from app.verification.trust import TrustStore
from tests.helpers import write_trust
from tests.registry.fake import FakeRegistry
from tests.registry.tools import LOCAL_REGISTRIES, LocalRegistry, local_registry
from tests.sigstore_stack import SigstoreTestStack


@pytest.fixture(autouse=True)
def _local_registries_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Apps, servers and CLIs started here may reach the loopback test registries."""
    monkeypatch.setenv("PROVENANT_REGISTRY_ALLOWED", LOCAL_REGISTRIES)


@pytest.fixture
def trust(policy_dir: Path, stack: SigstoreTestStack) -> TrustStore:
    return TrustStore.load(write_trust(policy_dir, stack))


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[LocalRegistry]:
    with local_registry(tmp_path / "registry") as running:
        yield running


@pytest.fixture
def fake() -> Iterator[FakeRegistry]:
    server = FakeRegistry()
    yield server
    server.close()


def make_service(
    db: Database,
    trust: TrustStore,
    keychain: Keychain | None = None,
    **client_options: object,
) -> RegistryService:
    client_options.setdefault("allowed", LOCAL_REGISTRIES)
    client = RegistryClient(**client_options)  # type: ignore[arg-type]
    return RegistryService(db, lambda: trust, client, keychain or Keychain())


@pytest.fixture
def service(db: Database, trust: TrustStore) -> Iterator[RegistryService]:
    made = make_service(db, trust)
    yield made
    made.close()
