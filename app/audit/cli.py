"""``provenant audit verify``: check an export file or a live server with only the public key.

Exit status: 0 all checks passed; 1 the log failed a check (the message names the first bad
sequence number when an event is to blame); 2 the check could not run (usage, I/O, network).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    import httpx
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from app.audit.verify import ExportResult

audit_cli = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Check the tamper-evident audit log"
)


@audit_cli.callback()
def _group() -> None:
    """Check the tamper-evident audit log."""
    # A callback keeps `audit` a command group even while it has a single command.


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code)


def _read_note(path: Path) -> str:
    """A saved checkpoint: the note text itself, or GET /v1/audit/checkpoint's JSON."""
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("{"):
        data: Any = json.loads(text)
        note = (data.get("note") or data.get("checkpoint")) if isinstance(data, dict) else None
        if not isinstance(note, str):
            raise ValueError(f"{path} has no 'note' field")
        return note
    return text


@audit_cli.command("verify")
def verify(
    export_file: Annotated[
        Path | None,
        typer.Argument(
            help="JSONL from GET /v1/audit/export", exists=True, dir_okay=False, readable=True
        ),
    ] = None,
    public_key: Annotated[
        Path | None,
        typer.Option(
            help="required: the log's public key, PEM or note verifier key "
            "(GET /v1/audit/public-key)",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ] = None,
    server: Annotated[
        str | None,
        typer.Option(help="verify this live server instead of a file (token: PROVENANT_TOKEN)"),
    ] = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option(help="an earlier saved checkpoint: the log must still extend it"),
    ] = None,
    save_checkpoint: Annotated[
        Path | None, typer.Option(help="write the newly verified checkpoint here, for next time")
    ] = None,
    origin: Annotated[
        str | None, typer.Option(help="expected log origin (signer name); default: as signed")
    ] = None,
    proofs: Annotated[
        int,
        typer.Option(help="with --server: inclusion proofs to fetch and check; -1 for all"),
    ] = 100,
) -> None:
    """Recompute every event's hashes and the Merkle root, check the checkpoint's signature,
    and the consistency of an earlier checkpoint with now."""
    from app.audit.keys import AuditKeyError, load_public_key
    from app.audit.verify import verify_export

    if (export_file is None) == (server is None):
        raise _fail("error: give an export file or --server URL (one of them)", 2)
    if public_key is None:
        raise _fail("error: --public-key is required: only the public key is trusted", 2)
    try:
        key = load_public_key(public_key.read_bytes())
        earlier = _read_note(checkpoint) if checkpoint else None
    except (AuditKeyError, OSError, ValueError) as exc:
        raise _fail(f"error: {exc}", 2) from exc

    if export_file is not None:
        try:
            with export_file.open(encoding="utf-8") as handle:
                result = verify_export(handle, key, origin=origin, earlier_note=earlier)
        except UnicodeDecodeError as exc:
            raise _fail(f"FAIL: {export_file} is not UTF-8 text: it is not an export") from exc
        extra = ""
    else:
        assert server is not None
        result, extra = _verify_live(server, key, origin, earlier, proofs)

    if result.problem is not None:
        where = f"first bad seq {result.problem.seq}: " if result.problem.seq is not None else ""
        raise _fail(f"FAIL: {where}{result.problem.reason}")
    assert result.checkpoint is not None and result.note is not None
    if save_checkpoint is not None:
        save_checkpoint.write_text(result.note, encoding="utf-8")
    consistent = f"; extends the earlier checkpoint ({checkpoint})" if earlier else ""
    typer.echo(
        f"OK: {result.events} events, root {result.checkpoint.root_hash.hex()}, "
        f"checkpoint signed by {result.checkpoint.origin}{consistent}{extra}"
    )


def _verify_live(
    server: str, key: Ed25519PublicKey, origin: str | None, earlier: str | None, proofs: int
) -> tuple[ExportResult, str]:
    """The export check over HTTP, then the server's own proofs against the signed root."""
    import httpx

    from app.audit.checkpoint import parse_note
    from app.audit.merkle import ProofError, verify_consistency, verify_inclusion
    from app.audit.verify import Problem, verify_export
    from app.settings import get_settings

    token = get_settings().token
    if not token:
        raise _fail("error: set PROVENANT_TOKEN to a token with the read scope", 2)
    headers = {"Authorization": f"Bearer {token}"}
    try:
        with httpx.Client(base_url=server, headers=headers, timeout=120) as client:
            with client.stream("GET", "/v1/audit/export") as response:
                _raise_for_status(response)
                result = verify_export(
                    response.iter_lines(),
                    key,
                    origin=origin,
                    earlier_note=earlier,
                    sample_size=proofs,
                )
            if result.problem is not None or result.checkpoint is None:
                return result, ""
            size, root = result.checkpoint.tree_size, result.checkpoint.root_hash
            for seq, leaf_hash in sorted(result.sample.items()):
                proof = _get(client, "/v1/audit/proof/inclusion", seq=seq, tree_size=size)
                try:
                    hashes = [bytes.fromhex(h) for h in proof["hashes"]]
                    verify_inclusion(seq, size, leaf_hash, hashes, root)
                except (ProofError, ValueError, KeyError, TypeError) as exc:
                    result.problem = Problem(seq, f"the server's inclusion proof fails: {exc}")
                    return result, ""
            extra = f"; {len(result.sample)} inclusion proofs checked"
            if earlier is not None:
                old, _, _ = parse_note(earlier)
                proof = _get(
                    client, "/v1/audit/proof/consistency", **{"from": old.tree_size}, to=size
                )
                try:
                    hashes = [bytes.fromhex(h) for h in proof["hashes"]]
                    verify_consistency(old.tree_size, size, old.root_hash, root, hashes)
                except (ProofError, ValueError, KeyError, TypeError) as exc:
                    result.problem = Problem(
                        None, f"the server's consistency proof from {old.tree_size} fails: {exc}"
                    )
                    return result, ""
                extra += f"; consistency proof {old.tree_size} -> {size} checked"
            return result, extra
    except httpx.HTTPError as exc:
        raise _fail(f"error: {server}: {exc}", 2) from exc


def _raise_for_status(response: httpx.Response) -> None:
    if response.status_code != 200:
        response.read()
        raise _fail(
            f"error: {response.request.url}: HTTP {response.status_code}: {response.text[:300]}", 2
        )


def _get(client: httpx.Client, path: str, **params: Any) -> Any:
    response = client.get(path, params=params)
    _raise_for_status(response)
    try:
        return response.json()
    except ValueError as exc:
        raise _fail(f"error: {response.request.url}: the answer is not JSON", 2) from exc


if __name__ == "__main__":  # `python -m app.audit.cli verify ...` until app.cli wires it in
    audit_cli()
