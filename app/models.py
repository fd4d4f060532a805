"""Imports every domain's models so ``Base.metadata`` is complete (Alembic, tests)."""

from app.admission import models as admission_models
from app.attestations import models as attestation_models
from app.audit import models as audit_models
from app.auth import models as auth_models
from app.continuous import models as continuous_models
from app.db import Base
from app.registry import models as registry_models

__all__ = [
    "Base",
    "admission_models",
    "attestation_models",
    "audit_models",
    "auth_models",
    "continuous_models",
    "registry_models",
]
