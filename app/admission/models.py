"""Admission decisions, and the attestation index version that keys the decision cache."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, BigIdType, JsonType, UtcDateTime


class Decision(Base):
    """One answer to one AdmissionReview, dry runs included (flagged).

    ``request`` is the review's request as received, minus ``managedFields``, so that a later
    policy set can be replayed against exactly what was asked. The audit event written in the
    same transaction names the decision and carries the hashes of ``request`` and
    ``explanation``, which ties these large columns into the tamper-evident log.
    """

    __tablename__ = "admission_decisions"

    # Time-ordered UUID (v7 layout): shown to users in denial messages, sorts by time.
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    uid: Mapped[str] = mapped_column(String(256), index=True)  # the AdmissionReview's uid
    namespace: Mapped[str | None] = mapped_column(Text, index=True)
    kind: Mapped[str] = mapped_column(Text)  # group/version/Kind of the object
    name: Mapped[str | None] = mapped_column(Text)
    sub_resource: Mapped[str | None] = mapped_column(Text)
    operation: Mapped[str] = mapped_column(String(16))
    user: Mapped[str] = mapped_column(Text)  # userInfo.username: who asked Kubernetes
    caller: Mapped[str] = mapped_column(Text)  # who called the webhook (token or certificate)
    # [{image, digest, reference, containers, allowed}]
    images: Mapped[list[dict[str, Any]]] = mapped_column(JsonType)
    allowed: Mapped[bool] = mapped_column(Boolean)
    # allowed | denied | warn | audit | error | break-glass | excluded | unsupported | skipped
    # | unchanged
    outcome: Mapped[str] = mapped_column(String(32), index=True)
    reasons: Mapped[list[str]] = mapped_column(JsonType)
    explanation: Mapped[dict[str, Any]] = mapped_column(JsonType)
    policy_hash: Mapped[str | None] = mapped_column(String(64))
    dry_run: Mapped[bool] = mapped_column(Boolean)
    request: Mapped[dict[str, Any]] = mapped_column(JsonType)
    request_sha256: Mapped[str] = mapped_column(String(64))


class AttestationIndexVersion(Base):
    """One row, bumped by every transaction that adds or revokes attestations.

    Every process reads it at most ``admission_index_max_age`` apart (and at once after its own
    changes) and keys its decision cache by it, so a change committed by any process reaches
    every process's decisions within that time: no notification can be missed.
    """

    __tablename__ = "attestation_index_version"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(BigInteger)


class DecisionImage(Base):
    """One row per image of a decision: the index behind "where did this digest run?".

    ``created_at`` repeats the decision's time so a query by digest walks one index in
    (time, id) order and stops after a page, however many decisions name that digest.
    ``policies`` lists the names of the policies that evaluated the image, space-separated with
    a space at each end (policy names are DNS subdomains, so they hold no space, ``%`` or
    ``_``): ``LIKE '% name %'`` then finds the decisions a policy took part in.
    """

    __tablename__ = "admission_decision_images"
    __table_args__ = (
        Index("ix_admission_decision_images_digest", "digest", "created_at", "decision_id"),
        Index("ix_admission_decision_images_repository", "repository", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigIdType, primary_key=True, autoincrement=True)
    decision_id: Mapped[str] = mapped_column(
        ForeignKey("admission_decisions.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    image: Mapped[str] = mapped_column(Text)  # as written in the object
    repository: Mapped[str | None] = mapped_column(Text)  # normalized name: registry/path
    digest: Mapped[str | None] = mapped_column(Text)  # "sha256:<hex>"; None for a tag only
    allowed: Mapped[bool | None] = mapped_column(Boolean)  # None: the image was not evaluated
    policies: Mapped[str] = mapped_column(Text)
