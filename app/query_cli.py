"""Client commands over the query API: ``provenant attestations|decisions|artifacts|evaluate|
simulate``. They talk to the server (``PROVENANT_SERVER``, ``PROVENANT_TOKEN``) and never open a
database, so they work from any directory and from CI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from app.cli_output import Output, OutputOption, fail, note, print_json, print_record, print_rows
from app.settings import get_settings

ServerOption = Annotated[
    str | None, typer.Option(help="Server URL (env PROVENANT_SERVER)", metavar="URL")
]
LimitOption = Annotated[int, typer.Option(min=1, max=500, help="Items per page", metavar="N")]
AllOption = Annotated[bool, typer.Option("--all", help="Follow next_cursor to the last page")]


def request(
    method: str,
    path: str,
    server: str | None,
    *,
    params: dict[str, Any] | None = None,
    json: Any = None,
) -> Any:
    """One API call; an error answer becomes ``error: <code>: <message>`` and exit 1."""
    import httpx

    settings = get_settings()
    if not settings.token:
        raise fail("set PROVENANT_TOKEN to a token with the read scope")
    base = server or settings.server
    query = {k: v for k, v in (params or {}).items() if v is not None}
    try:
        with httpx.Client(
            base_url=base, timeout=60, headers={"Authorization": f"Bearer {settings.token}"}
        ) as client:
            response = client.request(method, path, params=query, json=json)
    except httpx.TransportError as exc:
        reason = f"{type(exc).__name__}: {exc}"
        raise fail(f"cannot reach {base} ({reason}); check PROVENANT_SERVER", 1) from None
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code >= 400:
        error = (body or {}).get("error", {}) if isinstance(body, dict) else {}
        code = error.get("code", response.status_code)
        raise fail(f"{code}: {error.get('message') or response.text[:300]}", 1)
    return body


def pages(path: str, server: str | None, params: dict[str, Any], follow: bool) -> list[Any]:
    items: list[Any] = []
    cursor = None
    while True:
        page = request("GET", path, server, params={**params, "cursor": cursor})
        items += page.get("items", [])
        cursor = page.get("next_cursor")
        if not cursor or not follow:
            if cursor:
                note("more results: add --all, or narrow the query")
            return items


def attestations(
    subject_digest: Annotated[
        str | None,
        typer.Option(
            help="sha256:<hex> of an artifact (omitted: latest uploads)", metavar="DIGEST"
        ),
    ] = None,
    source_repo: Annotated[
        str | None, typer.Option(help="Repository, any spelling", metavar="URI")
    ] = None,
    predicate_type: Annotated[str | None, typer.Option(metavar="URI")] = None,
    limit: LimitOption = 50,
    all_pages: AllOption = False,
    server: ServerOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Stored attestations: one artifact's, or the latest uploads (newest first)."""
    params = {
        "subject_digest": subject_digest,
        "source_repo": source_repo,
        "predicate_type": predicate_type,
        "limit": limit,
    }
    items = pages("/v1/attestations", server, params, all_pages)
    rows = [
        {
            **item,
            "subjects": [
                f"{s.get('name')}@{alg}:{hex_}"
                for s in item.get("subjects", [])
                for alg, hex_ in sorted((s.get("digest") or {}).items())[:1]
            ],
            "signer": _signer(item.get("signer") or {}),
        }
        for item in items
    ]
    print_rows(
        rows,
        ["id", "uploaded_at", "content_kind", "signer", "source_repo", "subjects", "revoked"],
        output,
        empty="no attestations",
    )


def _signer(signer: dict[str, Any]) -> str | None:
    return signer.get("san") or signer.get("key_id") or signer.get("kind")


def decisions(
    digest: Annotated[
        str | None, typer.Option(help="sha256:<hex> of an image", metavar="DIGEST")
    ] = None,
    image: Annotated[
        str | None, typer.Option(help="Repository, repo@digest or image:tag", metavar="IMAGE")
    ] = None,
    namespace: Annotated[str | None, typer.Option(metavar="NAME")] = None,
    allowed: Annotated[
        bool | None, typer.Option("--allowed/--denied", help="Only allowed or only denied")
    ] = None,
    decision_id: Annotated[
        str | None, typer.Option("--id", help="One decision, in full", metavar="ID")
    ] = None,
    limit: LimitOption = 50,
    all_pages: AllOption = False,
    server: ServerOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Admission decisions, newest first; --id shows one with its full explanation."""
    if decision_id:
        print_record(request("GET", f"/v1/decisions/{decision_id}", server), output)
        return
    params = {
        "digest": digest,
        "image": image,
        "namespace": namespace,
        "limit": limit,
        "allowed": None if allowed is None else str(allowed).lower(),
    }
    items = pages("/v1/decisions", server, params, all_pages)
    rows = [
        {
            **item,
            "images": [
                i.get("image") if isinstance(i, dict) else i for i in item.get("images") or []
            ],
        }
        for item in items
    ]
    print_rows(
        rows,
        ["id", "time", "outcome", "namespace", "kind", "name", "images"],
        output,
        empty="no decisions",
    )


def artifacts(
    digest: Annotated[
        str | None,
        typer.Argument(
            help="sha256:<hex>: one artifact's provenance and where it ran", metavar="[DIGEST]"
        ),
    ] = None,
    source_repo: Annotated[
        str | None, typer.Option(help="Blast radius: built from this repository", metavar="URI")
    ] = None,
    source_commit: Annotated[str | None, typer.Option(metavar="SHA")] = None,
    builder_id: Annotated[str | None, typer.Option(metavar="URI")] = None,
    material_digest: Annotated[
        str | None, typer.Option(help="<algorithm>:<hex> of a material", metavar="DIGEST")
    ] = None,
    limit: LimitOption = 50,
    all_pages: AllOption = False,
    server: ServerOption = None,
    output: OutputOption = Output.table,
) -> None:
    """One artifact (DIGEST), or the artifacts built from a repository, commit, builder or material (the blast radius)."""  # noqa: E501
    if digest:
        body = request("GET", f"/v1/artifacts/{digest}", server)
        if output is Output.json:
            print_json(body)
            return
        rows = [
            {
                "attestation": a.get("id"),
                "builder_id": a.get("builder_id"),
                "source_repo": (a.get("source") or {}).get("repo"),
                "source_commit": (a.get("source") or {}).get("commit"),
                "revoked": a.get("revoked"),
            }
            for a in body.get("attestations", [])
        ]
        print_rows(
            rows,
            ["attestation", "builder_id", "source_repo", "source_commit", "revoked"],
            output,
            empty=f"no attestations for {digest}",
        )
        return
    params = {
        "source_repo": source_repo,
        "source_commit": source_commit,
        "builder_id": builder_id,
        "material_digest": material_digest,
        "limit": limit,
    }
    if not any(v for k, v in params.items() if k != "limit"):
        raise fail(
            "give DIGEST, or one of --source-repo, --source-commit, --builder-id, --material-digest"
        )
    items = pages("/v1/artifacts", server, params, all_pages)
    rows = [
        {
            "digest": i.get("digest"),
            "names": i.get("names"),
            "attestations": len(i.get("attestations") or []),
            "workloads": i.get("workload_count"),
        }
        for i in items
    ]
    print_rows(
        rows,
        ["digest", "names", "attestations", "workloads"],
        output,
        empty="no artifacts built from that",
    )


def evaluate(
    images: Annotated[
        list[str], typer.Argument(help="Image references, REF@sha256:DIGEST", metavar="IMAGE...")
    ],
    namespace: Annotated[
        str | None, typer.Option(help="Namespace (omitted: every policy)", metavar="NAME")
    ] = None,
    server: ServerOption = None,
    output: OutputOption = Output.table,
) -> None:
    """What admission would decide now for these images, and why; exits 1 when denied."""
    body = request(
        "POST",
        "/v1/evaluate",
        server,
        json={"images": images, **({"namespace": namespace} if namespace else {})},
    )
    if output is Output.json:
        print_json(body)
    else:
        print_rows(
            [
                {"image": i.get("image"), "allowed": i.get("allowed"), "reason": i.get("reason")}
                for i in body.get("images", [])
            ],
            ["image", "allowed", "reason"],
            output,
        )
        note(f"{'allowed' if body.get('allowed') else 'denied'}: {body.get('reason')}")
    if not body.get("allowed"):
        raise typer.Exit(1)


def simulate(
    directory: Annotated[
        Path,
        typer.Argument(
            help="Proposed policy directory (its *.yaml)",
            exists=True,
            file_okay=False,
            metavar="DIR",
        ),
    ],
    since: Annotated[
        str | None, typer.Option(help="ISO time (default: 24 h before --until)", metavar="TIME")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="ISO time (default: now)", metavar="TIME")
    ] = None,
    server: ServerOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Replay recorded admissions against proposed policies: which decisions would change."""
    files = {p.name: p.read_text() for p in sorted(directory.glob("*.y*ml")) if p.is_file()}
    if not files:
        raise fail(f"no .yaml files in {directory}")
    body = request(
        "POST",
        "/v1/policies/simulate",
        server,
        json={
            "documents": {"files": files},
            **({"since": since} if since else {}),
            **({"until": until} if until else {}),
        },
    )
    if output is Output.json:
        print_json(body)
        return
    print_record({k: v for k, v in body.items() if not isinstance(v, list | dict)}, output)


def register(cli: typer.Typer) -> None:
    for command in (attestations, decisions, artifacts, evaluate, simulate):
        cli.command()(command)
