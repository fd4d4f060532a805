"""``provenant vsa get|verify|push|rotate-key|policy-digest``."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from app.settings import get_settings

if TYPE_CHECKING:
    import httpx

vsa_cli = typer.Typer(
    no_args_is_help=True, help="Verification summaries (VSA v1): issue, verify, rotate the key"
)


def split_reference(reference: str) -> tuple[str | None, str]:
    """``IMAGE@sha256:...`` or ``sha256:...`` as (image name or None, digest); a tag alone
    proves nothing, so a digest is required."""
    name, at, digest = reference.rpartition("@")
    if at:
        return name, digest
    if reference.count(":") == 1 and "/" not in reference:
        return None, reference
    raise typer.BadParameter(
        f"{reference} has no digest: give IMAGE@sha256:<digest> or sha256:<digest> (a tag can "
        "move, so no VSA can be tied to it)"
    )


@vsa_cli.command("get")
def get(
    reference: Annotated[str, typer.Argument(help="IMAGE@sha256:<digest> or sha256:<digest>")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the VSA")],
    policy: Annotated[
        str | None, typer.Option(help="ImagePolicy name (default: the one selecting IMAGE)")
    ] = None,
    resource_uri: Annotated[
        str | None, typer.Option(help="Default: oci://<image name>@<digest>")
    ] = None,
    bundle: Annotated[bool, typer.Option(help="A Sigstore bundle instead of DSSE")] = False,
    server: Annotated[str | None, typer.Option(help="Server URL [env PROVENANT_SERVER]")] = None,
) -> None:
    """Ask the server for a signed VSA of an artifact (token from PROVENANT_TOKEN, scope read).
    Exits 0 for PASSED, 1 for FAILED (the signed FAILED VSA is still written), 2 on errors."""
    image, digest = split_reference(reference)
    params = {
        key: value
        for key, value in {
            "policy": policy,
            "image": image,
            "resource_uri": resource_uri,
            "format": "bundle" if bundle else "dsse",
        }.items()
        if value
    }
    response = _request_vsa(digest, params, server)
    output.write_bytes(response.content)
    result = response.headers.get("X-VSA-Result", "?")
    typer.echo(
        f"{output}: VSA {result} for {digest}, key {response.headers.get('X-VSA-Key-Id', '?')}",
        err=True,
    )
    if result != "PASSED":
        raise typer.Exit(1)


def _fetch_vsa(digest: str, image: str, policy: str | None, server: str | None) -> bytes:
    """The server's VSA of ``image@digest`` as a Sigstore bundle (exit 2 on errors)."""
    params = {"image": image, "format": "bundle", **({"policy": policy} if policy else {})}
    return _request_vsa(digest, params, server).content


def _request_vsa(digest: str, params: dict[str, str], server: str | None) -> httpx.Response:
    """``GET /v1/artifacts/{digest}/vsa`` with PROVENANT_TOKEN; any failure exits 2, saying why."""
    import httpx

    settings = get_settings()
    if not settings.token:
        typer.echo("error: set PROVENANT_TOKEN to a token with the read scope", err=True)
        raise typer.Exit(2)
    headers = {"Authorization": f"Bearer {settings.token}"}
    try:
        with httpx.Client(base_url=server or settings.server, headers=headers, timeout=60) as c:
            response = c.get(f"/v1/artifacts/{digest}/vsa", params=params)
    except httpx.TransportError as exc:
        typer.echo(f"error: cannot reach the server: {exc}", err=True)
        raise typer.Exit(2) from exc
    if response.status_code != 200:
        try:
            error = response.json()["error"]
            message = f"{error['code']}: {error['message']}"
        except (ValueError, KeyError, TypeError):
            message = response.text[:300]
        typer.echo(f"error: {response.status_code} {message}", err=True)
        raise typer.Exit(2)
    return response


@vsa_cli.command("push")
def push(
    image: Annotated[str, typer.Argument(help="IMAGE:tag or IMAGE@sha256:<digest>")],
    policy: Annotated[
        str | None, typer.Option(help="ImagePolicy name (default: the one selecting IMAGE)")
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            "-f",
            exists=True,
            dir_okay=False,
            help="Push this VSA (from vsa get) instead of asking the server",
        ),
    ] = None,
    server: Annotated[str | None, typer.Option(help="Server URL [env PROVENANT_SERVER]")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds for the whole push")] = 60.0,
) -> None:
    """Attach the image's VSA to it in its registry as an OCI referrer (a Sigstore bundle;
    the referrers tag sha256-<hex> is kept up to date for registries without the referrers
    API). Credentials: PROVENANT_REGISTRY_AUTH_FILE. A tag is resolved to its digest first.
    Exits 0 when a PASSED VSA was pushed, 1 for a FAILED one (still pushed), 2 on errors."""
    from app.registry.client import Deadline
    from app.registry.credentials import Keychain
    from app.registry.discovery import Target
    from app.registry.errors import RegistryError
    from app.registry.service import client_from_settings, parse_reference
    from app.vsa.push import NotPushable, push_vsa, pushable_bundle

    settings = get_settings()
    deadline = Deadline.after(timeout)
    client = client_from_settings(settings)
    try:
        ref = parse_reference(image)
        if ref.digest is not None and ref.digest[0] != "sha256":
            raise typer.BadParameter("only sha256 image digests are supported")
        credential = Keychain(settings.registry_auth_file).lookup(ref.registry)
        reference = ref.digest_string or ref.tag or "latest"
        subject = client.manifest(
            ref.registry, ref.repository, reference, deadline, credential=credential
        )
        if subject is None:
            typer.echo(f"error: {ref.name}:{reference} not found on {ref.registry}", err=True)
            raise typer.Exit(2)
        document = (
            file.read_bytes()
            if file is not None
            else _fetch_vsa(subject.digest, ref.name, policy, server)
        )
        bundle = pushable_bundle(document, subject.digest)
        target = Target(ref.registry, ref.repository, subject.digest, credential)
        attached = push_vsa(client, target, subject, bundle, deadline)
    except NotPushable as exc:
        typer.echo(f"error: {file or 'the VSA'}: {exc}", err=True)
        raise typer.Exit(2) from exc
    except RegistryError as exc:
        typer.echo(f"error: {exc.code}: {exc.message}", err=True)
        raise typer.Exit(2) from exc
    finally:
        client.close()
    how = "referrers API" if attached.referrers_api else f"referrers tag {attached.fallback_tag}"
    statement = json.loads(base64.b64decode(json.loads(bundle)["dsseEnvelope"]["payload"]))
    result = statement["predicate"].get("verificationResult", "?")
    typer.echo(f"{ref.name}@{attached.manifest_digest}")
    typer.echo(
        f"attached VSA {result} to {ref.name}@{subject.digest} as referrer "
        f"{attached.manifest_digest} ({how})",
        err=True,
    )
    if result != "PASSED":
        raise typer.Exit(1)


@vsa_cli.command("verify")
def verify(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="The VSA")
    ],
    public_key: Annotated[
        Path, typer.Option(exists=True, dir_okay=False, help="Verifier's PEM public key")
    ],
    resource_uri: Annotated[str, typer.Option(help="Expected resourceUri")],
    verified_level: Annotated[
        list[str] | None,
        typer.Option(help="Expected level (SLSA_BUILD_LEVEL_2 means 2 or higher); repeat"),
    ] = None,
    verifier_id: Annotated[str | None, typer.Option(help="Expected verifier.id")] = None,
    subject_digest: Annotated[
        list[str] | None, typer.Option(help="algorithm:value that must be a subject; repeat")
    ] = None,
    public_key_id: Annotated[
        str | None, typer.Option(help="Key id the signature must name (exact)")
    ] = None,
    max_age: Annotated[
        str | None, typer.Option(help="Reject a VSA verified longer ago (90s, 30m, 24h, 7d)")
    ] = None,
    policy_digest: Annotated[
        str | None, typer.Option(help="sha256:<hex> of the policy the verifier must have used")
    ] = None,
) -> None:
    """Verify a VSA offline with slsa-verifier verify-vsa's checks; exit 1 if it fails."""
    from app.policy.vsa import parse_max_age, parse_policy_digest
    from app.vsa.offline import Expectations, verify_vsa

    try:
        age = parse_max_age(max_age)
        pinned = parse_policy_digest(policy_digest)
    except ValueError as exc:
        raise typer.BadParameter(str(exc).removeprefix("vsa.")) from exc
    expect = Expectations(
        public_key_pem=public_key.read_bytes(),
        public_key_id=public_key_id,
        subject_digests=subject_digest or [],
        verifier_id=verifier_id,
        resource_uri=resource_uri,
        verified_levels=verified_level or [],
        max_age=age,
        policy_digest=pinned,
    )
    report = verify_vsa(file.read_bytes(), expect, datetime.now(UTC))
    typer.echo(json.dumps(report.as_dict(), indent=2))
    if not report.ok:
        typer.echo(f"FAILED: {report.error}: {report.reason}", err=True)
        raise typer.Exit(1)
    typer.echo("PASSED: verified VSA", err=True)


@vsa_cli.command("rotate-key")
def rotate_key(
    algorithm: Annotated[
        str | None, typer.Option(help="ecdsa-p256 or ed25519 [env PROVENANT_VSA_KEY_ALGORITHM]")
    ] = None,
) -> None:
    """Make a new VSA signing key active; the old public key stays published (servers switch
    at their next VSA)."""
    from app.vsa.keys import VsaKeyError, VsaKeyring

    settings = get_settings()
    ring = VsaKeyring(settings.vsa_key_dir, settings.vsa_key_algorithm)
    try:
        old, new = ring.rotate(algorithm)
    except VsaKeyError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"retired {old}", err=True)
    typer.echo(new)


@vsa_cli.command("policy-digest")
def policy_digest_command(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    name: Annotated[
        str | None, typer.Option(help="The ImagePolicy, in a multi-document file")
    ] = None,
) -> None:
    """Print sha256:<hex> of an ImagePolicy as a VSA names it (for a vsa: policyDigest)."""
    import yaml
    from pydantic import ValidationError

    from app.policy.schema import ImagePolicy
    from app.vsa.summary import document_digest

    try:
        documents = [d for d in yaml.safe_load_all(file.read_text()) if isinstance(d, dict)]
        policies = [
            ImagePolicy.model_validate(d) for d in documents if d.get("kind") == "ImagePolicy"
        ]
    except (yaml.YAMLError, ValidationError) as exc:
        typer.echo(f"error: {file}: {exc}", err=True)
        raise typer.Exit(2) from exc
    chosen = [p for p in policies if name is None or p.metadata.name == name]
    if len(chosen) != 1:
        names = ", ".join(p.metadata.name for p in policies) or "none"
        typer.echo(f"error: {file} holds ImagePolicies {names}: name one with --name", err=True)
        raise typer.Exit(2)
    typer.echo(f"sha256:{document_digest(chosen[0])}")
