"""The one settings object, read from ``PROVENANT_*`` environment variables.

Every field is documented in the README's configuration table; keep the two in step.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.limits import InputLimits


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
    # Limits on what a sender can make the server do (README "Limits"; docs/architecture.md).
    max_request_bytes: int = Field(
        default=1024 * 1024,
        gt=0,
        description="Largest accepted JSON body of the API's other requests (evaluate, "
        "simulate, revoke), in bytes; read only after the token is checked",
    )
    max_json_depth: int = Field(
        default=64,
        ge=8,
        le=200,  # what is stored must serialise back: pydantic stops near 255 levels
        description="Deepest nesting of arrays and objects in an uploaded document, its "
        "signed payload or an AdmissionReview",
    )
    max_integer_digits: int = Field(
        default=100,
        ge=20,
        le=4300,
        description="Most digits of one integer in an uploaded document or its payload",
    )
    max_signatures: int = Field(
        default=16,
        gt=0,
        le=1000,
        description="Most signatures on one DSSE envelope or in-toto link (each may be "
        "checked against every trusted key)",
    )
    max_jsonl_lines: int = Field(
        default=1000,
        gt=0,
        description="Most documents in one .intoto.jsonl upload",
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
    vsa_key_dir: Path = Field(
        default=Path("./var/vsa-keys"),
        description="Directory of the VSA signing key (active.pem, generated 0600 on first use) "
        "and the public keys of rotated-out keys (retired/*.pub), all still published",
    )
    vsa_key_algorithm: Literal["ecdsa-p256", "ed25519"] = Field(
        default="ecdsa-p256",
        description="Algorithm of generated VSA signing keys (first key and each rotation)",
    )
    vsa_verifier_id: str = Field(
        default="https://provenant.local/vsa-verifier",
        pattern=r"^[a-zA-Z][a-zA-Z0-9+.-]*:\S+$",
        description="The URI issued VSAs name as predicate.verifier.id",
    )
    registry_auth_file: Path | None = Field(
        default=None,
        description="Docker config.json whose `auths` hold registry credentials (credential "
        "helpers are not run)",
    )
    registry_pull_secrets_dir: Path | None = Field(
        default=None,
        description="Mounted kubernetes.io/dockerconfigjson Secrets as "
        "<dir>/<namespace>/<name>/.dockerconfigjson: a policy's pullSecrets and a Pod's "
        "imagePullSecrets are looked up here",
    )
    registry_certs_dir: Path | None = Field(
        default=None,
        description="Per-registry CA certificates as <dir>/<host[:port]>/ca.crt (Docker's "
        "certs.d layout)",
    )
    registry_insecure: str = Field(
        default="",
        description="Comma-separated registries (host[:port]) reached over plain HTTP; "
        "loopback registries always may be",
    )
    registry_allowed: str = Field(
        default="public",
        description="Comma-separated registries and hosts the server may contact: host, "
        "host:port, *.example.com, and `public` (any registry whose addresses are all public). "
        "Loopback, private and link-local addresses (also behind redirects and token realms) "
        "are reached only when listed; `none` turns registry access off",
    )
    registry_timeout: float = Field(
        default=30.0, gt=0, description="Seconds a pull (CLI or API) may take in all"
    )
    registry_concurrency: int = Field(
        default=4, gt=0, description="Requests in flight per registry, per process"
    )
    registry_retries: int = Field(
        default=3, ge=0, description="Retries of a request answered 429 or 5xx"
    )
    registry_max_manifest_bytes: int = Field(
        default=4 * 1024 * 1024, gt=0, description="Largest manifest or index read"
    )
    registry_max_blob_bytes: int = Field(
        default=10 * 1024 * 1024, gt=0, description="Largest signature or attestation layer read"
    )
    registry_negative_cache_seconds: float = Field(
        default=10.0,
        ge=0,
        description="How long a fetch on miss that failed or found nothing is remembered "
        "(0: never)",
    )
    registry_fetch_max_seconds: float = Field(
        default=4.0,
        gt=0,
        le=29,
        description="Ceiling on a policy's fetch-on-miss timeout: keep it below the webhook's "
        "timeoutSeconds",
    )
    registry_tag_cache_seconds: float = Field(
        default=60.0,
        ge=0,
        description="How long a tag resolved to a digest is trusted (tagOnly: resolve)",
    )
    registry_mutate: bool = Field(
        default=False,
        description="Serve POST /k8s/mutate, which pins tag-only images to their digest",
    )
    continuous_enabled: bool = Field(
        default=False,
        description="Run the continuous-validation watcher inside `provenant serve` (one per "
        "cluster is enough; with several replicas set continuous_lease_namespace)",
    )
    kubeconfig: Path | None = Field(
        default=None,
        description="kubeconfig of the cluster to watch; unset: in-cluster service-account "
        "config, then $KUBECONFIG or ~/.kube/config",
    )
    continuous_cluster: str = Field(
        default="default", min_length=1, max_length=253, description="Name of the watched cluster"
    )
    continuous_interval: float = Field(
        default=3600.0, gt=0, description="Seconds between scheduled full re-evaluations"
    )
    continuous_poll: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="Seconds between the watcher's looks at the attestation index version and "
        "the clock (uploads and revocations by other processes are seen within it)",
    )
    continuous_lease_namespace: str | None = Field(
        default=None,
        description="Namespace of the Lease the watcher replicas elect a leader with; unset: no "
        "election (a single watcher)",
    )
    continuous_lease_name: str = Field(
        default="provenant-watcher", description="Name of the watcher's leader-election Lease"
    )
    notifications_file: Path | None = Field(
        default=None,
        description="YAML file of notification endpoints for finding transitions "
        "(docs/continuous.md)",
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


def input_limits(settings: Settings) -> InputLimits:
    return InputLimits(
        max_json_depth=settings.max_json_depth,
        max_integer_digits=settings.max_integer_digits,
        max_signatures=settings.max_signatures,
        max_jsonl_lines=settings.max_jsonl_lines,
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
