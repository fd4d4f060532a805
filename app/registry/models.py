"""Where a stored attestation was found: registry, repository, manifest and scheme.

One attestation may be found in several places (the same bundle attached to an image in two
registries, or uploaded by CI and also found beside the image): one row per place.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, BigIdType, UtcDateTime


class RegistryOrigin(Base):
    __tablename__ = "registry_origins"
    __table_args__ = (
        UniqueConstraint(
            "attestation_id",
            "registry_host",
            "repository",
            "manifest_digest",
            name="uq_registry_origins_place",
        ),
        Index("ix_registry_origins_subject", "subject_digest"),
    )

    id: Mapped[int] = mapped_column(BigIdType, primary_key=True, autoincrement=True)
    attestation_id: Mapped[str] = mapped_column(
        ForeignKey("attestations.id", ondelete="CASCADE"), index=True
    )
    registry_host: Mapped[str] = mapped_column(Text)  # as in the image reference
    repository: Mapped[str] = mapped_column(Text)
    subject_digest: Mapped[str] = mapped_column(Text)  # the image digest it was found beside
    manifest_digest: Mapped[str] = mapped_column(Text)  # the referrer / .sig / .att manifest
    # referrers-api | referrers-tag | cosign-sig | cosign-att
    scheme: Mapped[str] = mapped_column(String(32))
    found_at: Mapped[datetime] = mapped_column(UtcDateTime())
