"""``provenant``: serve, migrate, tokens (and, per domain, upload, verify, policy, audit)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app import __version__
from app.admission.cli import webhook_cli
from app.audit.cli import audit_cli
from app.cli_output import (
    Output,
    OutputOption,
    fail,
    note,
    plain_help,
    print_json,
    print_record,
    print_rows,
)
from app.continuous.cli import findings, watch
from app.policy.cli import policy_cli
from app.query_cli import register as register_query_commands
from app.registry.cli import registry_cli
from app.settings import get_settings
from app.vsa.cli import vsa_cli

plain_help()
cli = typer.Typer(no_args_is_help=True, add_completion=False, help="Provenant attestation service")
token_cli = typer.Typer(no_args_is_help=True, help="Create, list and revoke API tokens")
cli.add_typer(token_cli, name="token")
cli.add_typer(policy_cli, name="policy")
cli.add_typer(audit_cli, name="audit")
cli.add_typer(webhook_cli, name="webhook")
cli.add_typer(vsa_cli, name="vsa")
cli.add_typer(registry_cli, name="registry")
register_query_commands(cli)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"provenant {__version__}")
        raise typer.Exit()


@cli.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit"
        ),
    ] = False,
) -> None:
    """Provenant attestation service"""


cli.command("watch")(watch)
cli.command("findings")(findings)


def _database():  # noqa: ANN202 - lazy import keeps `provenant --help` fast
    """The server's database, for the commands that work on it directly (tokens). It must
    exist already: a command run in the wrong directory must not create an empty one there."""
    from sqlalchemy import inspect
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from app.db import Database, normalize_url

    url = normalize_url(get_settings().database_url)
    parsed = make_url(url)
    shown = parsed.render_as_string(hide_password=True)
    remedy = "run `provenant migrate` or set PROVENANT_DATABASE_URL"
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        path = Path(parsed.database).resolve()
        if not path.is_file():
            raise fail(f"no Provenant database at {path} ({shown}): {remedy}")
    db = Database(url)
    try:
        with db.engine.connect() as conn:
            present = inspect(conn).has_table("alembic_version")
    except SQLAlchemyError as exc:
        db.dispose()
        reason = str(exc.orig if getattr(exc, "orig", None) else exc).splitlines()[0]
        raise fail(f"cannot open the database {shown}: {reason}; {remedy}") from None
    if not present:
        db.dispose()
        raise fail(f"the database {shown} has no Provenant schema: {remedy}")
    return db


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8080,
    tls_cert: Annotated[
        str | None, typer.Option(help="PEM certificate (chain): serve HTTPS")
    ] = None,
    tls_key: Annotated[str | None, typer.Option(help="PEM private key for --tls-cert")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes")] = 1,
    client_ca: Annotated[
        str | None,
        typer.Option(help="PEM CA of webhook client certificates (env PROVENANT_CLIENT_CA_FILE)"),
    ] = None,
) -> None:
    """Run the HTTP(S) API."""
    import os
    import ssl

    import uvicorn

    if bool(tls_cert) != bool(tls_key):
        raise typer.BadParameter("--tls-cert and --tls-key go together")
    if client_ca:
        # The app (built by the factory, in this process or in workers) reads it from settings.
        os.environ["PROVENANT_CLIENT_CA_FILE"] = client_ca
        get_settings.cache_clear()
    settings = get_settings()
    if workers == 1 and settings.admission_recorder == "process":
        from app.admission.recorder_spawn import prespawn
        from app.db_url import in_memory, normalize_url

        url = normalize_url(settings.database_url)
        if not in_memory(url):
            # Its imports overlap ours: the app adopts it instead of starting one when ready.
            prespawn(url)
    # Slow clients are cut off (app/slow_clients.py); the client-certificate protocol too.
    client_tls: dict[str, object] = {"http": "app.slow_clients:SlowClientProtocol"}
    if settings.client_ca_file is not None and not tls_cert:
        typer.echo("warning: client certificates need TLS (--tls-cert); only tokens work", err=True)
    elif settings.client_ca_file is not None:
        # Optional: token clients need no certificate; a presented one must chain to the CA.
        client_tls = {
            "ssl_ca_certs": str(settings.client_ca_file),
            "ssl_cert_reqs": ssl.CERT_OPTIONAL,
            "http": "app.admission.tlsproto:PeerCertProtocol",
        }
    uvicorn.run(
        "app.main:create_server_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        ssl_certfile=tls_cert,
        ssl_keyfile=tls_key,
        log_level=settings.log_level.lower(),
        server_header=False,
        **client_tls,  # type: ignore[arg-type]
    )


@cli.command()
def migrate(
    revision: Annotated[str, typer.Argument(help="Target revision")] = "head",
) -> None:
    """Bring the database schema up to date (Alembic)."""
    from app.migrate import upgrade

    url = get_settings().database_url
    upgrade(url, revision)
    typer.echo(f"database migrated to {revision}", err=True)


@cli.command()
def upload(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="Bundles, envelopes, links, .intoto.jsonl, npm .tgz.json attestation files",
            exists=True,
            dir_okay=False,
            readable=True,
            metavar="FILE...",
        ),
    ],
    server: Annotated[
        str | None, typer.Option(help="Server URL (env PROVENANT_SERVER)", metavar="URL")
    ] = None,
    subject_digest: Annotated[
        str | None,
        typer.Option(
            help="For message-signature bundles: sha256:<hex> of the signed artifact",
            metavar="DIGEST",
        ),
    ] = None,
    subject_name: Annotated[
        str | None, typer.Option(help="Name of that artifact", metavar="NAME")
    ] = None,
    retries: Annotated[
        int, typer.Option(min=1, help="Attempts per file on 5xx/connection errors", metavar="N")
    ] = 5,
    output: OutputOption = Output.table,
) -> None:
    """Upload signed provenance from CI (token from PROVENANT_TOKEN). Exits 1 on any rejection.

    npm's attestation files are split: each attestations[].bundle is uploaded on its own.
    Each retry is logged on stderr with its reason.
    """
    import sys

    import httpx

    from app.attestations.client import documents, upload_document

    settings = get_settings()
    if not settings.token:
        raise fail(
            "set PROVENANT_TOKEN to a token with the upload scope "
            "(`provenant token create --name ci --scope upload` on the server)"
        )
    params = {
        k: v
        for k, v in {"subject_digest": subject_digest, "subject_name": subject_name}.items()
        if v
    }
    uploads = [doc for path in files for doc in documents(path)]
    reports = []
    headers = {"Authorization": f"Bearer {settings.token}"}
    with httpx.Client(base_url=server or settings.server, headers=headers, timeout=60) as client:
        for number, document in enumerate(uploads, 1):
            if len(uploads) > 1 and sys.stderr.isatty():
                note(f"[{number}/{len(uploads)}] {document.label}")
            report = upload_document(
                client,
                document,
                params=params,
                attempts=retries,
                on_retry=lambda message: note(f"retry: {message}"),
            )
            reports.append(report)
            if output is Output.table:
                typer.echo(report.describe())  # one line per upload; never wrapped
    if output is Output.json:
        print_json([r.as_dict() for r in reports])
    failed = sum(not r.ok for r in reports)
    if failed:
        note(f"{failed} of {len(reports)} upload(s) failed")
        raise typer.Exit(1)


@cli.command()
def verify(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, metavar="FILE")
    ],
    policy_dir: Annotated[
        Path | None, typer.Option(help="Trust roots and keys (env PROVENANT_POLICY_DIR)")
    ] = None,
    subject_digest: Annotated[
        str | None,
        typer.Option(help="For message-signature bundles: sha256:<hex> of the signed artifact"),
    ] = None,
    output: OutputOption = Output.json,
) -> None:
    """Verify a document locally and offline with the server's own code; exit 1 if it fails."""
    import json

    from app.attestations.local_verify import verify_file

    report, ok = verify_file(file, policy_dir or get_settings().policy_dir, subject_digest)
    if output is Output.json:
        typer.echo(json.dumps(report, indent=2, default=str))
    else:
        print_record(report, output)
    if not ok:
        raise typer.Exit(1)


@token_cli.command("create")
def token_create(
    name: Annotated[str, typer.Option(help="Unique name, e.g. the CI pipeline")],
    scope: Annotated[list[str], typer.Option(help="upload, read, admission or admin; repeat")],
) -> None:
    """Create a token and print it, alone, on stdout (it is stored hashed: save it now)."""
    from app.auth.service import TokenError, create_token

    db = _database()
    try:
        with db.session() as session:
            token = create_token(session, name, scope)
    except TokenError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    finally:
        db.dispose()
    typer.echo(token)


@token_cli.command("list")
def token_list(output: OutputOption = Output.table) -> None:
    """List tokens (names and scopes; the secrets are not stored)."""
    from app.auth.service import list_tokens

    db = _database()
    with db.session() as session:
        rows = list_tokens(session)
    db.dispose()
    print_rows(
        [
            {
                "name": row.name,
                "scopes": sorted(row.scopes),
                "created": f"{row.created_at:%Y-%m-%d}",
                "state": f"revoked {row.revoked_at:%Y-%m-%d}" if row.revoked_at else "active",
            }
            for row in rows
        ],
        ["name", "scopes", "created", "state"],
        output,
        empty="no tokens yet: `provenant token create --name NAME --scope SCOPE`",
    )


@token_cli.command("revoke")
def token_revoke(name: Annotated[str, typer.Argument(help="Token name")]) -> None:
    """Revoke a token by name; requests with it get 401 from then on."""
    from app.auth.service import TokenError, revoke_token

    db = _database()
    try:
        with db.session() as session:
            revoke_token(session, name)
    except TokenError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    finally:
        db.dispose()
    typer.echo(f"revoked {name}", err=True)


@token_cli.command("hint", hidden=True)
def token_hint() -> None:
    """What `make run` prints before starting the server."""
    typer.echo(
        "Provenant: create a token in another shell with\n"
        "  .venv/bin/provenant token create --name me --scope admin\n"
        'then: curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8080/v1/whoami',
        err=True,
    )


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
