"""Hostile-input fixtures: the trust of the ingest tests, an uploader, a reader, an admin."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import TokenFactory, write_trust
from tests.sigstore_stack import SigstoreTestStack


@pytest.fixture
def policy_dir(tmp_path: Path, stack: SigstoreTestStack) -> Path:
    return write_trust(tmp_path / "policies", stack)


@pytest.fixture
def uploader(tokens: TokenFactory) -> dict[str, str]:
    return tokens("upload", name="ci")


@pytest.fixture
def reader(tokens: TokenFactory) -> dict[str, str]:
    return tokens("read", name="auditor")


@pytest.fixture
def admin(tokens: TokenFactory) -> dict[str, str]:
    return tokens("admin", name="root")


@pytest.fixture
def webhook(tokens: TokenFactory) -> dict[str, str]:
    return tokens("admission", name="kube-apiserver")
