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
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.admission.documents import join_explanation, join_request, time_text
from app.db import Base, BigIdType, JsonType, UtcDateTime


class Decision(Base):
    """One answer to one AdmissionReview, dry runs included (flagged).

    The row keeps the request's own facts and the keys of two shared documents
    (``app/admission/documents.py``): the explanation with the images and reasons shown in
    lists (``DecisionExplanation``), and the request as received minus ``managedFields``
    (``DecisionRequest``), each stored once for every decision of a Pod template. The
    properties below put the decision's own values back, so ``explanation`` and ``request``
    read exactly as they were decided and hash to what the audit event written in the same
    transaction committed to (``explanation_sha256``, ``request_sha256``).
    """

    __tablename__ = "admission_decisions"

    # Time-ordered UUID (v7 layout): shown to users in denial messages, sorts by time.
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    # The AdmissionReview's uid. Not indexed: no query reads by it, and an index of random
    # values costs a page write per decision (migration 0013 dropped it).
    uid: Mapped[str] = mapped_column(String(256))
    namespace: Mapped[str | None] = mapped_column(Text, index=True)
    kind: Mapped[str] = mapped_column(Text)  # group/version/Kind of the object
    name: Mapped[str | None] = mapped_column(Text)
    sub_resource: Mapped[str | None] = mapped_column(Text)
    operation: Mapped[str] = mapped_column(String(16))
    user: Mapped[str] = mapped_column(Text)  # userInfo.username: who asked Kubernetes
    caller: Mapped[str] = mapped_column(Text)  # who called the webhook (token or certificate)
    allowed: Mapped[bool] = mapped_column(Boolean)
    # allowed | denied | warn | audit | error | break-glass | excluded | unsupported | skipped
    # | unchanged. Not indexed (since 0013): queries by outcome are within a time window.
    outcome: Mapped[str] = mapped_column(String(32))
    policy_hash: Mapped[str | None] = mapped_column(String(64))
    dry_run: Mapped[bool] = mapped_column(Boolean)
    # Always written; nullable only because migration 0013 added them to a table SQLite could
    # not rebuild (see there).
    explanation_key: Mapped[str] = mapped_column(String(64), nullable=True)  # its sha256
    request_key: Mapped[str] = mapped_column(String(64), nullable=True)  # DecisionRequest's
    # The request's own values, by dotted path (documents.split_request).
    request_own: Mapped[dict[str, Any]] = mapped_column(JsonType, nullable=True)
    request_sha256: Mapped[str] = mapped_column(String(64))

    shared_explanation: Mapped[DecisionExplanation] = relationship(
        primaryjoin="foreign(Decision.explanation_key) == DecisionExplanation.sha256",
        lazy="joined",
        viewonly=True,
    )
    shared_request: Mapped[DecisionRequest] = relationship(
        primaryjoin="foreign(Decision.request_key) == DecisionRequest.sha256",
        lazy="joined",
        viewonly=True,
    )

    @property
    def images(self) -> list[dict[str, Any]]:  # [{image, digest, reference, containers, allowed}]
        return self.shared_explanation.images

    @property
    def reasons(self) -> list[str]:
        return self.shared_explanation.reasons

    @property
    def explanation(self) -> dict[str, Any]:
        return join_explanation(
            self.shared_explanation.explanation,
            self.id,
            self.uid,
            time_text(self.created_at),
            self.name,
        )

    @property
    def request(self) -> dict[str, Any]:
        return join_request(self.shared_request.request, self.request_own, self.uid)


class DecisionExplanation(Base):
    """An explanation shared by decisions, stored once under the SHA-256 of this row's
    canonical JSON ``{"explanation", "images", "reasons"}`` (``documents.explanation_body``)."""

    __tablename__ = "admission_explanations"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    explanation: Mapped[dict[str, Any]] = mapped_column(JsonType)
    images: Mapped[list[dict[str, Any]]] = mapped_column(JsonType)
    reasons: Mapped[list[str]] = mapped_column(JsonType)


class DecisionRequest(Base):
    """A request shared by decisions (``documents.split_request``), stored once under the
    SHA-256 of its canonical JSON."""

    __tablename__ = "admission_requests"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    request: Mapped[dict[str, Any]] = mapped_column(JsonType)


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
