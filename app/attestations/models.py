"""Verified documents and their index by digest.

The raw upload lives in its own table so that listing and querying never drag megabytes of
bundle JSON along; everything policy or audit queries ask about is a column or an index row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base, BigIdType, JsonType, UtcDateTime


class Attestation(Base):
    __tablename__ = "attestations"

    # sha256 (hex) of the uploaded bytes: re-uploading the same bytes finds the same record.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    format: Mapped[str] = mapped_column(Text)  # sigstore-bundle | dsse | intoto-link
    media_type: Mapped[str | None] = mapped_column(Text)
    content_kind: Mapped[str] = mapped_column(Text)  # statement | message-signature | link
    predicate_type: Mapped[str | None] = mapped_column(Text, index=True)
    size: Mapped[int] = mapped_column(Integer)
    uploaded_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    uploaded_by: Mapped[str] = mapped_column(Text)
    # Signer facts, as verified: the first signer also gets columns for direct queries.
    signers: Mapped[list[dict[str, Any]]] = mapped_column(JsonType)
    signer_kind: Mapped[str] = mapped_column(String(16))  # keyless | key
    signer_issuer: Mapped[str | None] = mapped_column(Text)
    signer_san: Mapped[str | None] = mapped_column(Text, index=True)
    signer_key_id: Mapped[str | None] = mapped_column(Text, index=True)
    trust_root: Mapped[str | None] = mapped_column(Text)  # the first root that verified it
    # Every configured root that verifies it (NULL on rows stored before revision 0011).
    trust_roots: Mapped[list[str] | None] = mapped_column(JsonType, nullable=True)
    tlog_entries: Mapped[list[dict[str, Any]]] = mapped_column(JsonType)
    timestamps: Mapped[list[str]] = mapped_column(JsonType)
    statement: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    # SLSA provenance (v0.2 and v1), extracted once so queries need no JSON paths.
    builder_id: Mapped[str | None] = mapped_column(Text, index=True)
    build_type: Mapped[str | None] = mapped_column(Text)
    source_repo: Mapped[str | None] = mapped_column(Text, index=True)
    source_ref: Mapped[str | None] = mapped_column(Text)
    source_commit: Mapped[str | None] = mapped_column(Text, index=True)
    build_parameters: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    revoked_reason: Mapped[str | None] = mapped_column(Text)

    subjects: Mapped[list[AttestationSubject]] = relationship(
        back_populates="attestation", cascade="all, delete-orphan", lazy="selectin"
    )
    materials: Mapped[list[AttestationMaterial]] = relationship(
        back_populates="attestation", cascade="all, delete-orphan", lazy="selectin"
    )


class AttestationBlob(Base):
    __tablename__ = "attestation_blobs"

    attestation_id: Mapped[str] = mapped_column(
        ForeignKey("attestations.id", ondelete="CASCADE"), primary_key=True
    )
    raw: Mapped[bytes] = mapped_column(LargeBinary)


class AttestationSubject(Base):
    """One row per (subject, digest algorithm): the index admission looks images up in."""

    __tablename__ = "attestation_subjects"
    __table_args__ = (Index("ix_attestation_subjects_digest", "algorithm", "digest"),)

    id: Mapped[int] = mapped_column(BigIdType, primary_key=True, autoincrement=True)
    attestation_id: Mapped[str] = mapped_column(
        ForeignKey("attestations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(Text)
    algorithm: Mapped[str] = mapped_column(Text)
    digest: Mapped[str] = mapped_column(Text)

    attestation: Mapped[Attestation] = relationship(back_populates="subjects")


class AttestationMaterial(Base):
    """Resolved dependencies (SLSA v1) or materials (v0.2): what a build consumed."""

    __tablename__ = "attestation_materials"
    __table_args__ = (Index("ix_attestation_materials_digest", "algorithm", "digest"),)

    id: Mapped[int] = mapped_column(BigIdType, primary_key=True, autoincrement=True)
    attestation_id: Mapped[str] = mapped_column(
        ForeignKey("attestations.id", ondelete="CASCADE"), index=True
    )
    uri: Mapped[str | None] = mapped_column(Text)
    algorithm: Mapped[str | None] = mapped_column(Text)
    digest: Mapped[str | None] = mapped_column(Text)

    attestation: Mapped[Attestation] = relationship(back_populates="materials")
