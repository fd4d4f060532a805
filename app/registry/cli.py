"""``provenant registry pull``: read a registry beside an image, verify, store, and say what."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.settings import get_settings

registry_cli = typer.Typer(
    no_args_is_help=True, help="Read signatures and attestations stored beside images"
)


@registry_cli.command("pull")
def pull(
    image: Annotated[str, typer.Argument(help="IMAGE[:tag] or IMAGE@sha256:<hex>")],
    remote: Annotated[
        bool,
        typer.Option(
            "--remote",
            help="Ask the server (POST /v1/registry/pull with PROVENANT_TOKEN) instead of "
            "pulling here against PROVENANT_DATABASE_URL",
        ),
    ] = False,
    policy_dir: Annotated[
        Path | None, typer.Option(help="Trust roots and keys [env PROVENANT_POLICY_DIR]")
    ] = None,
    platforms: Annotated[
        bool, typer.Option(help="For an index, also look beside each platform manifest")
    ] = True,
    timeout: Annotated[float | None, typer.Option(help="Seconds for the whole pull")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the result as JSON")] = False,
) -> None:
    """Discover (referrers API, referrers tag, cosign .sig/.att), verify each item like an
    upload, store it with where it came from; print what was found, verified and rejected.
    Exit 1 when anything was rejected, 2 when the registry failed."""
    from rich.console import Console

    from app.registry.schemas import PullResult

    console = Console(stderr=True)
    if remote:
        result = _remote(image, platforms, timeout)
    else:
        result = _local(image, policy_dir, platforms, timeout, console)
    if json_output:
        typer.echo(result.model_dump_json(indent=2))
    else:
        _table(result, Console())
    if isinstance(result, PullResult) and result.rejected:
        raise typer.Exit(1)


def _local(image, policy_dir, platforms, timeout, console):  # noqa: ANN001, ANN202
    from app.db import Database
    from app.policy.store import load_policy_set
    from app.registry.errors import RegistryError
    from app.registry.service import from_settings

    settings = get_settings()
    policies = load_policy_set(policy_dir or settings.policy_dir)
    db = Database(settings.database_url)
    service = from_settings(settings, db, lambda: policies.trust)
    try:
        with console.status(f"pulling {image}") as status:
            return service.pull(
                image,
                timeout=timeout,
                platforms=platforms,
                trigger="cli",
                progress=lambda message: status.update(message),
            )
    except RegistryError as exc:
        typer.echo(f"error: {exc.code}: {exc.message}", err=True)
        raise typer.Exit(2) from exc
    finally:
        service.close()
        db.dispose()


def _remote(image, platforms, timeout):  # noqa: ANN001, ANN202
    import httpx

    from app.registry.schemas import PullResult

    settings = get_settings()
    if not settings.token:
        typer.echo("error: --remote needs PROVENANT_TOKEN (a token with scope upload)", err=True)
        raise typer.Exit(2)
    body = {"image": image, "platforms": platforms, "timeout": timeout}
    response = httpx.post(
        settings.server.rstrip("/") + "/v1/registry/pull",
        json=body,
        headers={"Authorization": f"Bearer {settings.token}"},
        timeout=(timeout or settings.registry_timeout) + 10,
    )
    if response.status_code != 200:
        error = response.json().get("error", {}) if response.content else {}
        typer.echo(f"error: {error.get('code')}: {error.get('message')}", err=True)
        raise typer.Exit(2)
    return PullResult.model_validate(response.json())


def _table(result, console) -> None:  # noqa: ANN001
    from rich.table import Table

    source = f" (tag {result.resolved_from_tag})" if result.resolved_from_tag else ""
    console.print(f"{result.registry}/{result.repository}@{result.digest}{source}")
    api = {True: "yes", False: "no (referrers tag schema used)", None: "not asked"}
    console.print(f"referrers API: {api[result.referrers_api]}")
    table = Table("subject", "scheme", "status", "attestation / reason")
    for item in result.items:
        what = (
            f"{item.attestation_id[:16]} {item.predicate_type or 'signature'}"
            if item.attestation_id
            else f"{item.code}: {item.message}"
        )
        table.add_row(item.subject_digest[:19], item.scheme, item.status, what)
    console.print(table)
    console.print(
        f"{len(result.items)} found: {result.created} verified and stored, "
        f"{result.existing} already stored, {result.rejected} rejected "
        f"({result.seconds:.2f}s, {result.verify_seconds:.2f}s verifying)"
    )
