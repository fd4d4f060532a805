"""An in-memory Rekor v1 transparency log: RFC 6962 Merkle tree, signed checkpoints and SETs."""

from __future__ import annotations

import base64
import hashlib
import threading
from typing import Any

import rfc8785
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from tests.sigstore_stack._pki import key_id


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def _node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(size: int) -> int:
    """Largest power of two strictly below ``size`` (RFC 6962 section 2.1)."""
    return 1 << ((size - 1).bit_length() - 1)


class TransparencyLog:
    """A Rekor-like log that really appends: log indexes grow, proofs are against the live tree.

    Thread-safe, since pytest-xdist may not be the only source of concurrency in a test process.
    """

    def __init__(
        self, key: ec.EllipticCurvePrivateKey, *, hostname: str, tree_id: int, prefill: int = 5
    ) -> None:
        self.key = key
        self.hostname = hostname
        self.origin = f"{hostname} - {tree_id}"
        self._leaves: list[bytes] = []
        # Only complete power-of-two subtrees are cached: they never change once full, which
        # keeps each new proof at O(log^2 n) however many bundles a test session signs.
        self._complete: dict[tuple[int, int], bytes] = {}
        self._lock = threading.Lock()
        for n in range(prefill):
            # Entries from "other users", so proofs have siblings on both sides.
            self._leaves.append(leaf_hash(f"{self.origin} prefill {n}".encode()))

    @property
    def log_id(self) -> bytes:
        return key_id(self.key.public_key())

    def _subtree(self, start: int, size: int) -> bytes:
        if size == 1:
            return self._leaves[start]
        complete = size & (size - 1) == 0
        if complete and (start, size) in self._complete:
            return self._complete[(start, size)]
        k = _split(size)
        result = _node_hash(self._subtree(start, k), self._subtree(start + k, size - k))
        if complete:
            self._complete[(start, size)] = result
        return result

    def _path(self, index: int, start: int, size: int) -> list[bytes]:
        """RFC 6962 audit path, lowest level first (the order sigstore-python folds it in)."""
        if size == 1:
            return []
        k = _split(size)
        if index < k:
            return [*self._path(index, start, k), self._subtree(start + k, size - k)]
        return [*self._path(index - k, start + k, size - k), self._subtree(start, k)]

    def append(
        self,
        body: bytes,
        *,
        kind: str,
        integrated_time: int,
        inclusion_promise: bool = True,
        checkpoint_signer: ec.EllipticCurvePrivateKey | None = None,
        set_signer: ec.EllipticCurvePrivateKey | None = None,
        corrupt_proof: bool = False,
    ) -> dict[str, Any]:
        """Log ``body`` (a canonicalized Rekor entry) and return its bundle ``tlogEntries`` item.

        The ``*_signer`` overrides sign with another key while keeping this log's key hint and
        log id, i.e. a forged checkpoint / SET; ``corrupt_proof`` flips a bit in the audit path.
        """
        with self._lock:
            index = len(self._leaves)
            self._leaves.append(leaf_hash(body))
            size = len(self._leaves)
            root = self._subtree(0, size)
            path = self._path(index, 0, size)

        if corrupt_proof:
            path[0] = bytes([path[0][0] ^ 0x01]) + path[0][1:]

        note = f"{self.origin}\n{size}\n{b64(root)}\n"
        note_sig = (checkpoint_signer or self.key).sign(note.encode(), ec.ECDSA(hashes.SHA256()))
        checkpoint = f"{note}\n\u2014 {self.hostname} {b64(self.log_id[:4] + note_sig)}\n"

        entry: dict[str, Any] = {
            "logIndex": str(index),
            "logId": {"keyId": b64(self.log_id)},
            "kindVersion": {"kind": kind, "version": "0.0.1"},
            "integratedTime": str(integrated_time),
            "inclusionProof": {
                "logIndex": str(index),
                "rootHash": b64(root),
                "treeSize": str(size),
                "hashes": [b64(h) for h in path],
                "checkpoint": {"envelope": checkpoint},
            },
            "canonicalizedBody": b64(body),
        }
        if inclusion_promise:
            payload = rfc8785.dumps(
                {
                    "body": b64(body),
                    "integratedTime": integrated_time,
                    "logID": self.log_id.hex(),
                    "logIndex": index,
                }
            )
            set_sig = (set_signer or self.key).sign(payload, ec.ECDSA(hashes.SHA256()))
            entry["inclusionPromise"] = {"signedEntryTimestamp": b64(set_sig)}
        return entry


def hashedrekord_body(*, digest: bytes, signature: bytes, verifier_pem: bytes) -> bytes:
    """A canonical ``hashedrekord`` 0.0.1 entry, exactly what Rekor stores for a blob signature."""
    return rfc8785.dumps(
        {
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
                "signature": {
                    "content": b64(signature),
                    "publicKey": {"content": b64(verifier_pem)},
                },
            },
        }
    )


def dsse_body(
    *, envelope: dict[str, Any], payload: bytes, signatures: list[bytes], verifier_pem: bytes
) -> bytes:
    """A canonical ``dsse`` 0.0.1 entry; Rekor keeps hashes and signatures, not the envelope."""
    return rfc8785.dumps(
        {
            "apiVersion": "0.0.1",
            "kind": "dsse",
            "spec": {
                "envelopeHash": {
                    "algorithm": "sha256",
                    "value": hashlib.sha256(rfc8785.dumps(envelope)).hexdigest(),
                },
                "payloadHash": {
                    "algorithm": "sha256",
                    "value": hashlib.sha256(payload).hexdigest(),
                },
                "signatures": [
                    {"signature": b64(sig), "verifier": b64(verifier_pem)} for sig in signatures
                ],
            },
        }
    )
