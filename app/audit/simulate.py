"""Policy simulation: replay the admission requests recorded in a time window against a proposed
policy set, and count the decisions that would change.

The proposal is a complete set of policy documents (the directory's top-level ``*.yaml``); the
keys, trust roots and layouts it refers to come from the active policy directory, copied beside
it, so ``keys/release.pub`` resolves as it will once the proposal is deployed.

Replays go through the admission service's own ``judge`` (extraction, exclusions, UPDATE rules,
exemptions, break-glass), with today's attestations and revocations and today's time: the
question answered is "what would these requests get if this policy were deployed now".
Nothing is recorded as a decision; a throwaway decision cache keeps simulated results out of
the webhook's.

Outcomes that no policy can change are not replayed: ``skipped`` (DELETE, CONNECT, other
subresources), ``unsupported`` (kinds without pod specs) and ``unchanged`` (updates adding no
image) are allowed whatever the policies say. ``excluded`` decisions are replayed, since the
proposal may stop excluding their namespace.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select, tuple_

from app.admission.cache import DecisionCache
from app.admission.documents import join_request
from app.admission.extract import ExtractError
from app.admission.models import Decision, DecisionExplanation, DecisionRequest
from app.admission.schemas import AdmissionRequest
from app.admission.service import Admission, extract_images, judge_or_error
from app.admission.verdicts import Verdict
from app.audit.queries import utc
from app.db import Database
from app.policy.store import PolicySet, PolicyStore, load_policy_set

NEVER_EVALUATED = ("skipped", "unsupported", "unchanged")
SUPPORT_DIRS = ("trust", "keys", "layouts")
FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,120}\.ya?ml$")
DEFAULT_FILE = "policies.yaml"
_BATCH = 200
_CACHE_SECONDS = 3600.0  # the cache lives for one simulation only


class ProposalError(ValueError):
    """The proposal cannot be written as a policy directory (a bad file name)."""


@contextmanager
def proposed_policy_set(active_dir: Path, files: dict[str, str]) -> Iterator[PolicySet]:
    """Load ``files`` as a policy directory beside copies of the active one's trust, keys and
    layouts; raises PolicyLoadError (every problem, with file and line) or ProposalError."""
    for name in files:
        if not FILE_NAME.match(name):
            raise ProposalError(
                f"file name {name!r}: expected a plain name ending in .yaml or .yml"
            )
    with tempfile.TemporaryDirectory(prefix="provenant-simulate-") as tmp:
        directory = Path(tmp) / "policies"
        directory.mkdir()
        for sub in SUPPORT_DIRS:
            if (active_dir / sub).is_dir():
                shutil.copytree(active_dir / sub, directory / sub)
        for name, text in files.items():
            (directory / name).write_text(text, encoding="utf-8")
        # Kept until the simulation ends: nothing may read a file after it is gone.
        yield load_policy_set(directory)


@dataclass
class Tally:
    examples_per_direction: int
    replayed: int = 0
    unreadable: int = 0
    outcome_changed: int = 0  # same allowed, different outcome (e.g. allowed -> warn)
    directions: dict[str, int] = field(
        default_factory=lambda: {"allowed_to_denied": 0, "denied_to_allowed": 0}
    )
    examples: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {"allowed_to_denied": [], "denied_to_allowed": []}
    )

    def add(self, row: Any, verdict: Verdict) -> None:
        self.replayed += 1
        if verdict.allowed == row.allowed:
            self.outcome_changed += verdict.outcome != row.outcome
            return
        direction = "allowed_to_denied" if row.allowed else "denied_to_allowed"
        self.directions[direction] += 1
        if len(self.examples[direction]) < self.examples_per_direction:
            self.examples[direction].append(_example(row, verdict))


def simulate(
    db: Database,
    store: PolicyStore,
    proposed: PolicySet,
    *,
    since: datetime,
    until: datetime,
    max_decisions: int,
    examples: int,
) -> dict[str, Any]:
    admission = Admission(db=db, policies=store, cache=DecisionCache(_CACHE_SECONDS))
    tally = Tally(examples)
    window = (Decision.created_at >= since, Decision.created_at < until)
    now = datetime.now(UTC)
    truncated = False
    after: tuple[datetime, str] | None = None
    while not truncated:
        batch = _batch(db, window, after, min(_BATCH, max_decisions - tally.replayed + 1))
        if not batch:
            break
        for row in batch:
            if tally.replayed + tally.unreadable >= max_decisions:
                truncated = True
                break
            verdict = _replay(admission, proposed, row, now)
            if verdict is None:
                tally.unreadable += 1
            else:
                tally.add(row, verdict)
        after = (batch[-1].created_at, batch[-1].id)
    with db.session() as session:
        not_replayed = session.scalar(
            select(func.count())
            .select_from(Decision)
            .where(*window, Decision.outcome.in_(NEVER_EVALUATED))
        )
    active = store.active
    return {
        "policy_hash": proposed.content_hash,
        "active_policy_hash": active.content_hash if active else None,
        "since": since.isoformat(),
        "until": until.isoformat(),
        "evaluated_at": now.isoformat(),
        "replayed": tally.replayed,
        "changed": sum(tally.directions.values()),
        **tally.directions,
        "unchanged": tally.replayed - sum(tally.directions.values()),
        "outcome_changed": tally.outcome_changed,
        "not_replayed": int(not_replayed or 0),
        "unreadable": tally.unreadable,
        "truncated": truncated,
        "examples": tally.examples,
        "warnings": list(proposed.warnings),
    }


def _batch(
    db: Database, window: tuple[Any, ...], after: tuple[datetime, str] | None, size: int
) -> list[Any]:
    """The next recorded requests of the window, oldest first."""
    columns = (
        Decision.id, Decision.created_at, Decision.namespace, Decision.kind, Decision.name,
        Decision.uid, Decision.allowed, Decision.outcome, Decision.dry_run,
        DecisionExplanation.images, DecisionRequest.request.label("shared_request"),
        Decision.request_own,
    )  # fmt: skip
    query = (
        select(*columns)
        .join(DecisionExplanation, DecisionExplanation.sha256 == Decision.explanation_key)
        .join(DecisionRequest, DecisionRequest.sha256 == Decision.request_key)
        .where(*window, Decision.outcome.not_in(NEVER_EVALUATED))
    )
    if after is not None:
        query = query.where(tuple_(Decision.created_at, Decision.id) > tuple_(*after))
    query = query.order_by(Decision.created_at, Decision.id).limit(size)
    with db.session() as session:
        return list(session.execute(query).all())


def _replay(admission: Admission, proposed: PolicySet, row: Any, now: datetime) -> Verdict | None:
    """The proposal's verdict on the recorded request; None when it cannot be read again."""
    try:
        request = AdmissionRequest.model_validate(
            join_request(row.shared_request, row.request_own, row.uid)
        )
        extraction = extract_images(request)
    except (ValidationError, ExtractError):
        return None
    return judge_or_error(
        admission, request, extraction, proposed, row.namespace, now, label=f"simulated {row.id}"
    )


def _example(row: Any, verdict: Verdict) -> dict[str, Any]:
    return {
        "decision": row.id,
        "time": utc(row.created_at).isoformat(),
        "namespace": row.namespace,
        "kind": row.kind,
        "name": row.name,
        "dry_run": row.dry_run,
        "images": [image["image"] for image in row.images],
        "recorded": {"allowed": row.allowed, "outcome": row.outcome},
        "simulated": {
            "allowed": verdict.allowed,
            "outcome": verdict.outcome,
            "reasons": verdict.reasons,
            "denial": verdict.denial,
        },
    }
