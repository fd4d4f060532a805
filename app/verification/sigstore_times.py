"""Verified signing times of a bundle: RFC 3161 timestamps and SET-bound integrated times."""

from __future__ import annotations

from datetime import datetime

from sigstore.errors import Error as SigstoreError
from sigstore.models import Bundle, TrustedRoot
from sigstore.verify import Verifier
from sigstore.verify import verifier as library_verifier

from app.verification import errors as E
from app.verification.errors import VerificationError
from app.verification.sigstore_errors import translate


def _timestamp_verifier(root: TrustedRoot) -> Verifier:
    # Verifier.__init__ insists on Fulcio CAs and a Rekor URL; its timestamp checks use
    # neither, and key-signed bundles may come with a root that has only a TSA.
    verifier = Verifier.__new__(Verifier)
    verifier._trusted_root = root
    return verifier


def verified_tsa_times(bundle: Bundle, root: TrustedRoot) -> list[datetime]:
    """Times from the bundle's RFC 3161 timestamps that verify against ``root``'s TSAs."""
    try:
        data = bundle.verification_material.timestamp_verification_data
        if data is None:
            return []
        if not root.get_timestamp_authorities():
            raise VerificationError(
                E.TIMESTAMP_INVALID,
                "bundle contains signed timestamps but the trust root has no Timestamp Authority",
            )
        results = _timestamp_verifier(root)._verify_timestamp_authority(bundle)
    except (SigstoreError, ValueError) as exc:
        raise translate(exc) from exc
    return [result.time for result in results]


def require_enough_times(times: list[datetime]) -> None:
    # Read at call time so it follows the library's setting (upstream's tests raise it to 2).
    threshold = library_verifier.VERIFIED_TIME_THRESHOLD
    if len(times) < threshold:
        raise VerificationError(
            E.TIMESTAMP_INVALID,
            f"not enough sources of verified time: {len(times)} < {threshold}",
        )
