"""``provenant watch`` (the watcher as a process of its own) and ``provenant findings`` (a
table of the current findings, read from a server's API)."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Annotated

import typer

from app.settings import get_settings


def watch(
    kubeconfig: Annotated[
        str | None, typer.Option(help="kubeconfig file [env PROVENANT_KUBECONFIG]")
    ] = None,
    cluster: Annotated[
        str | None, typer.Option(help="cluster name [env PROVENANT_CONTINUOUS_CLUSTER]")
    ] = None,
    lease_namespace: Annotated[
        str | None,
        typer.Option(
            help="elect a leader with a Lease here [env PROVENANT_CONTINUOUS_LEASE_NAMESPACE]"
        ),
    ] = None,
) -> None:
    """Watch the cluster's Pods and keep findings current, until SIGTERM or SIGINT."""
    from pathlib import Path

    from app.continuous.wiring import build_validator
    from app.db import Database
    from app.policy.store import PolicyStore, install_sighup_reload

    settings = get_settings()
    updates: dict[str, object] = {}
    if kubeconfig:
        updates["kubeconfig"] = Path(kubeconfig)
    if cluster:
        updates["continuous_cluster"] = cluster
    if lease_namespace:
        updates["continuous_lease_namespace"] = lease_namespace
    settings = settings.model_copy(update=updates)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    db = Database(settings.database_url, pool_size=4)
    policies = PolicyStore(settings.policy_dir)
    if policies.reload() is None:
        typer.echo(f"error: no policy set loaded: {policies.last_error}", err=True)
        raise typer.Exit(2)
    validator = build_validator(settings, db, policies, standalone=True)
    policies.listeners.append(validator.policies_reloaded)
    install_sighup_reload(policies)
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    validator.start()
    stopping.wait()
    validator.stop()
    db.dispose()


def findings(
    namespace: Annotated[str | None, typer.Option(help="only this namespace")] = None,
    status: Annotated[
        str | None, typer.Option(help="compliant, violating, error or exempt")
    ] = None,
    policy: Annotated[str | None, typer.Option(help="only findings naming this policy")] = None,
    server: Annotated[str | None, typer.Option(help="Server URL [env PROVENANT_SERVER]")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 1000,
) -> None:
    """Print the current findings as a table (token with the read scope in PROVENANT_TOKEN)."""
    import httpx
    from rich.console import Console
    from rich.table import Table

    settings = get_settings()
    if not settings.token:
        typer.echo("error: set PROVENANT_TOKEN to a token with the read scope", err=True)
        raise typer.Exit(2)
    params = {
        k: v for k, v in {"namespace": namespace, "status": status, "policy": policy}.items() if v
    }
    params["limit"] = str(limit)
    headers = {"Authorization": f"Bearer {settings.token}"}
    with httpx.Client(base_url=server or settings.server, headers=headers, timeout=30) as client:
        response = client.get("/v1/findings", params=params)
    if response.status_code != 200:
        typer.echo(f"error: {response.status_code}: {response.text[:500]}", err=True)
        raise typer.Exit(1)
    items = response.json()["items"]
    table = Table(
        "namespace", "workload", "container", "image", "status", "policies", "since", "reason"
    )
    for item in items:
        workload = item["workload"]
        table.add_row(
            item["namespace"],
            f"{workload['kind']}/{workload['name']}",
            item["container"],
            item["image"],
            item["status"] + (" (expiring)" if item["expiring"] else ""),
            ",".join(item["policies"]),
            item["since"],
            (item["reasons"] or [""])[0],
        )
    Console(width=200).print(table)
    if not items:
        typer.echo("no findings", err=True)
