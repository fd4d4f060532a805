"""Everything verification trusts, loaded once from the policy directory.

Built at startup and on policy reload; verification functions take it as an argument so the
core stays free of globals, FastAPI and the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sigstore.models import TrustedRoot

    from app.verification.keyring import TrustedKey


@dataclass(frozen=True)
class TrustStore:
    # name -> root; order is the order in which roots are tried ("public-good", "staging",
    # then policies/trust/*.json sorted)
    roots: dict[str, TrustedRoot] = field(default_factory=dict)
    # key id (as the signer computes it) -> key; one key may appear under several ids
    keys: dict[str, TrustedKey] = field(default_factory=dict)

    @classmethod
    def load(cls, policy_dir: Path) -> TrustStore:
        from app.verification.keyring import load_keys
        from app.verification.trust_roots import load_trust_roots

        return cls(roots=load_trust_roots(policy_dir), keys=load_keys(policy_dir))
