"""Alembic driven from code, so no alembic.ini is needed and the URL comes from settings."""

from __future__ import annotations

import sys
from pathlib import Path

from alembic import command
from alembic.config import Config

from app.db import normalize_url


def _migrations_dir() -> Path:
    """Beside ``app/`` in a checkout; under ``<prefix>/share/provenant`` where the wheel put them
    (the container image installs the wheel, not the checkout)."""
    beside = Path(__file__).resolve().parent.parent / "migrations"
    if (beside / "env.py").is_file():
        return beside
    return Path(sys.prefix) / "share" / "provenant" / "migrations"


MIGRATIONS_DIR = _migrations_dir()


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)
