"""``provenant webhook``: what installing the admission webhook needs from the command line.

Wired into the main command as ``cli.add_typer(webhook_cli, name="webhook")``; also runs alone
as ``python -m app.admission.cli``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

webhook_cli = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Install the Kubernetes admission webhook"
)


@webhook_cli.callback()
def _group() -> None:
    """Install the Kubernetes admission webhook."""
    # A callback keeps `webhook` a command group while it has a single command.


@webhook_cli.command("certs")
def certs(
    service: Annotated[str, typer.Option(help="The webhook's Service name")],
    namespace: Annotated[str, typer.Option(help="The Service's namespace")],
    out: Annotated[Path, typer.Option(help="Directory to write the files into", file_okay=False)],
    days: Annotated[
        int, typer.Option(min=1, help="Validity of the serving (and client) certificate")
    ] = 365,
    ca_days: Annotated[int, typer.Option(min=1, help="Validity of the CA")] = 3650,
    client_cert: Annotated[
        str | None,
        typer.Option(
            help="Also issue client.crt/client.key with this Common Name, for kube-apiserver's "
            "webhook client identity"
        ),
    ] = None,
    dns: Annotated[
        list[str] | None, typer.Option(help="Extra DNS name for the serving certificate; repeat")
    ] = None,
    ip: Annotated[
        list[str] | None,
        typer.Option(
            help="IP address for the serving certificate (a `url` webhook on an IP); repeat"
        ),
    ] = None,
    renew: Annotated[
        bool,
        typer.Option(help="Keep the CA already in --out (same caBundle), reissue the certificates"),
    ] = False,
    force: Annotated[bool, typer.Option(help="Replace existing files, CA included")] = False,
) -> None:
    """Write a CA (ca.crt, ca.key) and a serving certificate (tls.crt, tls.key) for
    SERVICE.NAMESPACE.svc; print the caBundle (base64 of ca.crt), alone, on stdout.

    Keys are ECDSA P-256, mode 0600. Keep ca.key offline: it is only needed to renew.
    """
    from app.admission.certs import CertificateError, write_webhook_certs

    try:
        result = write_webhook_certs(
            out,
            service,
            namespace,
            days=days,
            ca_days=ca_days,
            client_cert=client_cert,
            extra_dns=dns or (),
            ip_addresses=ip or (),
            force=force,
            renew=renew,
        )
    except CertificateError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    serving = result.serving.cert
    typer.echo(
        f"{'reused' if result.reused_ca else 'new'} CA {out / 'ca.crt'}; serving certificate "
        f"{out / 'tls.crt'} for {', '.join(result.dns_names)}"
        + (f", {', '.join(ip or [])}" if ip else "")
        + f", valid until {serving.not_valid_after_utc:%Y-%m-%d}",
        err=True,
    )
    if result.client is not None:
        typer.echo(f"client certificate {out / 'client.crt'} (CN={client_cert})", err=True)
    typer.echo(result.ca_bundle)


if __name__ == "__main__":
    webhook_cli()
