"""Transparency-log entry proofs that sigstore-python 4.5 does not check itself.

Its loader demands a checkpointed inclusion proof in every entry, but v0.1 bundles may carry
only an inclusion promise (SET), as sigstore-js 1.x, cosign and npm wrote them. The
cryptography (Merkle inclusion, checkpoint signature, SET signature) is the library's own;
this module decides which of them apply to an entry. Entry bodies: ``tlog_bodies``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from sigstore._internal.merkle import verify_merkle_inclusion
from sigstore._internal.rekor.checkpoint import verify_checkpoint
from sigstore._internal.trust import KeyringPurpose
from sigstore.errors import Error as SigstoreError
from sigstore.models import TransparencyLogEntry, TrustedRoot

from app.verification import errors as E
from app.verification.errors import VerificationError


@dataclass(frozen=True)
class EntryVerdict:
    inclusion: Literal["proof", "promise"]
    integrated_time: datetime | None  # only when a verified SET binds it


def log_is_in_root(entry: TransparencyLogEntry, root: TrustedRoot) -> bool:
    log_id = entry._inner.log_id.key_id
    return any(
        log_id in (tlog.log_id.key_id, tlog.checkpoint_key_id and tlog.checkpoint_key_id.key_id)
        for tlog in root._inner.tlogs
    )


def _proof_error(message: str) -> VerificationError:
    return VerificationError(E.TLOG_PROOF_INVALID, message)


def verify_log_entry(entry: TransparencyLogEntry, root: TrustedRoot) -> EntryVerdict:
    """Inclusion proof + signed checkpoint when present, SET when present; at least one.

    A v0.1 bundle may carry a proof without a checkpoint: its root hash is signed by nobody,
    so it proves nothing and is ignored, as the bundle spec (and sigstore-python) say. That
    later bundle versions need the checkpointed proof is enforced before any root is tried.
    """
    inner = entry._inner
    if not log_is_in_root(entry, root):
        raise VerificationError(
            E.UNTRUSTED_ROOT, f"transparency log {inner.log_id.key_id.hex()} is not in this root"
        )
    try:
        keyring = root.rekor_keyring(KeyringPurpose.VERIFY)
    except SigstoreError as exc:
        raise VerificationError(E.UNTRUSTED_ROOT, str(exc)) from exc
    proof = inner.inclusion_proof
    checkpointed = proof is not None and proof.checkpoint is not None
    if checkpointed:
        try:
            verify_merkle_inclusion(entry)
            verify_checkpoint(keyring, entry)
        except (SigstoreError, ValueError) as exc:
            raise _proof_error(f"invalid inclusion proof: {exc}") from exc
    integrated_time = None
    if inner.inclusion_promise is not None:
        if not inner.integrated_time:
            raise _proof_error("inclusion promise without an integrated time")
        try:
            entry._verify_set(keyring)
        except (SigstoreError, ValueError) as exc:
            raise _proof_error(f"invalid inclusion promise: {exc}") from exc
        integrated_time = datetime.fromtimestamp(inner.integrated_time, tz=UTC)
    elif not checkpointed:
        raise _proof_error("entry has neither an inclusion proof nor an inclusion promise")
    return EntryVerdict("proof" if checkpointed else "promise", integrated_time)
