"""``provenant policy lint DIR`` and ``provenant policy test DIR --image REF --attestation FILE``.

Offline and with the service's own code: the same loader, the same verification as ingest
(on files instead of uploads) and the same engine, so a policy that passes here decides the
same way in the cluster. Exit codes: 0 allow (or lint clean), 1 deny (or lint errors), 2 the
command could not run (unreadable directory, bad image reference).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from app.cli_output import Output, OutputOption

# The engine, CEL and verification load lazily, inside the commands: `provenant --help` and
# every other subcommand must not pay for them.
if TYPE_CHECKING:
    from app.policy.facts import StoredAttestation
    from app.policy.lookup import Lookup
    from app.policy.matching import ImageRef
    from app.policy.results import Evaluation
    from app.policy.store import PolicySet
    from app.verification.trust import TrustStore

policy_cli = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Lint and test policy directories offline"
)


def _load(directory: Path) -> PolicySet:
    from app.policy.loader import PolicyLoadError
    from app.policy.store import load_policy_set

    try:
        return load_policy_set(directory)
    except PolicyLoadError as exc:
        for error in exc.errors:
            typer.echo(f"error: {error}", err=True)
        typer.echo(f"{len(exc.errors)} error(s) in {directory}", err=True)
        raise typer.Exit(1) from None
    except FileNotFoundError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@policy_cli.command()
def lint(
    directory: Annotated[Path, typer.Argument(help="Policy directory (PROVENANT_POLICY_DIR)")],
) -> None:
    """Validate every policy file, key, trust root, CEL condition and layout; list all errors."""
    active = _load(directory)
    for warning in active.warnings:
        typer.echo(f"warning: {warning}", err=True)
    config = active.config.file or "defaults"
    typer.echo(
        f"{directory}: {len(active.policies)} ImagePolicy, PolicyConfig from {config}, "
        f"content hash {active.content_hash[:12]}"
    )


@policy_cli.command()
def test(
    directory: Annotated[Path, typer.Argument(help="Policy directory")],
    image: Annotated[
        str, typer.Option(help="Image reference, REF@sha256:DIGEST", metavar="REF@DIGEST")
    ],
    attestation: Annotated[
        list[Path],
        typer.Option(
            help="Bundle, DSSE envelope, link or .intoto.jsonl; one file per flag, repeat it "
            "for more",
            metavar="FILE",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ] = [],  # noqa: B006 - typer reads the default, never mutates it
    namespace: Annotated[str | None, typer.Option(help="Namespace the Pod runs in")] = None,
    at: Annotated[
        datetime | None, typer.Option(help="Evaluate as of this time (exemption expiry)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Same as --output json")] = False,
    output: OutputOption = Output.table,
) -> None:
    """Decide as admission would, from attestation files instead of the database."""
    from app.policy.engine import evaluate
    from app.policy.matching import parse_image

    active = _load(directory)
    try:
        ref = parse_image(image)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    now = (at if at.tzinfo else at.replace(tzinfo=UTC)) if at else datetime.now(UTC)
    stored = verify_files(attestation, active.trust, ref, now)
    result = evaluate(image, namespace, active, memory_lookup(stored), now)
    if as_json or output is Output.json:
        typer.echo(json.dumps(result.as_dict(), indent=2))
    else:
        for line in render(result):
            typer.echo(line)
    raise typer.Exit(0 if result.allowed else 1)


def verify_files(
    paths: list[Path], trust: TrustStore, image: ImageRef, now: datetime
) -> list[StoredAttestation]:
    """What ingest would store for these files; a file that fails verification is reported
    and left out, exactly as ingest would reject it."""
    from app.policy.facts import from_verified
    from app.verification.errors import VerificationError
    from app.verification.facts import Subject
    from app.verification.formats import detect_format, split_jsonl
    from app.verification.verify import verify_document

    stored: list[StoredAttestation] = []
    for path in paths:
        data = path.read_bytes()
        try:
            documents = split_jsonl(data) if detect_format(data, None) == "jsonl" else [data]
        except VerificationError as exc:
            typer.echo(f"rejected {path}: {exc.code}: {exc.message}", err=True)
            continue
        for number, raw in enumerate(documents, start=1):
            where = f"{path}" + (f" line {number}" if len(documents) > 1 else "")
            try:
                document = verify_document(raw, trust, message_digest=image.digest)
            except VerificationError as exc:
                typer.echo(f"rejected {where}: {exc.code}: {exc.message}", err=True)
                continue
            subjects = list(document.subjects)
            if document.content_kind == "message-signature" and image.digest:
                # A message signature names no subject; ingest takes it from the uploader.
                subjects = [Subject(image.name, {image.digest[0]: image.digest[1]})]
            stored.append(
                from_verified(
                    document, id=hashlib.sha256(raw).hexdigest(), subjects=subjects, uploaded_at=now
                )
            )
            kind = document.predicate_type or document.content_kind
            typer.echo(f"verified {where}: {kind}", err=True)
    return stored


def memory_lookup(stored: list[StoredAttestation]) -> Lookup:
    def lookup(algorithm: str, hex_digest: str) -> list[StoredAttestation]:
        return [
            a for a in stored if any(s.digests.get(algorithm) == hex_digest for s in a.subjects)
        ]

    return lookup


def render(result: Evaluation) -> list[str]:
    """The explanation as lines: decision, then per image, policy and requirement."""
    lines = [f"{'ALLOW' if result.allowed else 'DENY'} (mode {result.mode})"]
    for image in result.images:
        verdict = "allowed" if image.allowed else "denied"
        # Reasons often begin with the verdict already ("allowed: p passed"): say it once.
        reason = image.reason.removeprefix(f"{verdict}: ")
        lines.append(f"{image.image}: {verdict}: {reason}")
        for policy in image.policies:
            lines.append(f"  policy {policy.name} [{policy.mode}] {policy.status}")
            for req in policy.requirements:
                lines.append(f"    {req.status:8} {req.name}: {req.reason}")
        lines.extend(f"  warning: {w}" for w in image.warnings)
        lines.extend(f"  audit: {a}" for a in image.audit)
    return lines
