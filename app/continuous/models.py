"""Findings (the current judgement of each running container image) and the notification
delivery log (an outbox: rows are written with the transition, delivered afterwards)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, BigIdType, JsonType, UtcDateTime


class Finding(Base):
    """One (workload, container, image) running in a cluster, and how it stands now.

    ``key`` is the sha256 of the identifying columns: unique and short, whatever the lengths of
    names and image references.
    """

    __tablename__ = "continuous_findings"

    id: Mapped[int] = mapped_column(BigIdType, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    cluster: Mapped[str] = mapped_column(String(253))
    namespace: Mapped[str] = mapped_column(String(253))
    workload_kind: Mapped[str] = mapped_column(String(64))
    workload_name: Mapped[str] = mapped_column(String(253))
    container: Mapped[str] = mapped_column(String(253))
    image: Mapped[str] = mapped_column(Text)  # the reference evaluated (digest from imageID)
    digest: Mapped[str | None] = mapped_column(String(80), index=True)
    # compliant | violating | error | exempt
    status: Mapped[str] = mapped_column(String(16))
    expiring: Mapped[bool] = mapped_column(Boolean, default=False)  # exemption near its end
    # ",a,b,": the policies that judged it (the failing ones when violating), LIKE-searchable
    policies: Mapped[str] = mapped_column(Text, default=",")
    reasons: Mapped[list[str]] = mapped_column(JsonType)
    pods: Mapped[int] = mapped_column(Integer)
    since: Mapped[datetime] = mapped_column(UtcDateTime())  # when it took this status
    evaluated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    policy_hash: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_continuous_findings_namespace_status", "namespace", "status"),
        Index("ix_continuous_findings_status", "status"),
    )


class Delivery(Base):
    """One notification to one endpoint: pending until delivered or out of attempts."""

    __tablename__ = "continuous_deliveries"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # also the CloudEvent id
    endpoint: Mapped[str] = mapped_column(String(253))
    event_type: Mapped[str] = mapped_column(String(128))
    subject: Mapped[str] = mapped_column(Text)
    event: Mapped[dict[str, Any]] = mapped_column(JsonType)  # the CloudEvent, structured
    status: Mapped[str] = mapped_column(String(16))  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    __table_args__ = (
        Index("ix_continuous_deliveries_status_next", "status", "next_attempt_at"),
        Index("ix_continuous_deliveries_endpoint_created", "endpoint", "created_at"),
    )
