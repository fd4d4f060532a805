"""The one settings object, read from ``PROVENANT_*`` environment variables.

Every field is documented in the README's configuration table; keep the two in step.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PROVENANT_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///./var/provenant.db",
        description="SQLAlchemy URL: sqlite:///path or postgresql+psycopg://user@host/db",
    )
    policy_dir: Path = Field(
        default=Path("./policies"),
        description="Directory of policies, trust roots, keys and in-toto layouts",
    )
    max_upload_bytes: int = Field(
        default=10 * 1024 * 1024, gt=0, description="Largest accepted upload body, in bytes"
    )
    db_pool_size: int = Field(default=10, gt=0, description="PostgreSQL connection pool size")
    token_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        description="How long a process trusts a checked token before asking the database again "
        "(a revoked token stops working within this time; 0 disables the cache)",
    )
    log_level: str = Field(default="info", description="Log level: debug, info, warning, error")
    audit_key_file: Path = Field(
        default=Path("./var/audit-key.pem"),
        description="Ed25519 PEM key that signs audit checkpoints; generated (0600) if missing",
    )
    audit_origin: str = Field(
        default="provenant.local/audit",
        pattern=r"^[^\s+]+$",
        description="Audit log identity: first line of every checkpoint and the signer name",
    )
    audit_checkpoint_interval: float = Field(
        default=60.0, ge=0, description="Seconds between periodic audit checkpoints; 0 disables"
    )
    client_ca_file: Path | None = Field(
        default=None,
        description="PEM CA certificate(s) of webhook clients: `provenant serve --tls-cert` then "
        "asks for an optional client certificate verified against it, and POST /k8s/validate "
        "accepts such a certificate instead of a token (kube-apiserver's webhook identity)",
    )
    admission_concurrency: int = Field(
        default=4,
        gt=0,
        description="Admission decisions that read the database (cache misses) computed at once "
        "per process; more wait their turn",
    )
    admission_recorder: Literal["process", "thread"] = Field(
        default="process",
        description="Where admission decisions are written: `process`, a child process per "
        "server process (the decision loop keeps its CPU), or `thread`, a thread of the server "
        "process (no extra process; slower under load). Either way an answer leaves only after "
        "its decision is committed",
    )
    admission_index_max_age: float = Field(
        default=0.25,
        ge=0,
        le=1.0,
        description="Longest time a process trusts the attestation index version it last read "
        "before deciding on cached evaluations (uploads and revocations reach other replicas' "
        "decisions within it; a revocation is acknowledged only after it); 0 reads it for every "
        "decision",
    )
    admission_cache_seconds: float = Field(
        default=30.0,
        ge=0,
        description="Longest time an admission decision cache entry lives (uploads, revocations "
        "and policy reloads invalidate it at once; this bounds only clock-driven changes such "
        "as layout expiry); 0 disables the cache",
    )
    max_containers_per_object: int = Field(
        default=1000,
        gt=0,
        description="Most containers (all lists together) an admitted object may have; an "
        "object with more is denied unevaluated, naming this limit",
    )
    header_read_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds a client has to send a request's line and headers (from the "
        "connection's opening, or the request's first byte); later, 408 and the connection "
        "is closed",
    )
    body_read_timeout: float = Field(
        default=30.0,
        gt=0,
        description="Seconds a client has to send a request's whole body after its headers; "
        "later, 408 and the connection is closed",
    )
    ingest_workers: int = Field(
        # One: on the reference 2-core machine two workers doubled admission p99 under 8
        # concurrent 10 MiB uploads where one left it at 2 to 3x (bench/mixed.py).
        default=1,
        ge=0,
        description="Worker processes per server process that parse, verify and store uploads, "
        "at a lower CPU priority, so uploads never stall admission (keep it below the number of "
        "cores); 0 runs them in threads of the server process",
    )
    # CLI client side
    server: str = Field(
        default="http://127.0.0.1:8080", description="Server URL used by the CLI client"
    )
    token: str | None = Field(default=None, description="API token used by the CLI client")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
