"""Database URL spelling, without importing SQLAlchemy (the CLI uses it before the app loads)."""

from __future__ import annotations


def normalize_url(url: str) -> str:
    """Accept the plain ``postgresql://`` spelling and route it to psycopg 3."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def in_memory(url: str) -> bool:
    """An in-memory SQLite database, which no other process can reach."""
    return url in ("sqlite://", "sqlite:///:memory:") or url.startswith("sqlite:///:memory:?")
