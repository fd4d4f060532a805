"""Imports every domain's models so ``Base.metadata`` is complete (Alembic, tests)."""

from app.attestations import models as attestation_models
from app.audit import models as audit_models
from app.auth import models as auth_models
from app.db import Base

__all__ = ["Base", "attestation_models", "audit_models", "auth_models"]
