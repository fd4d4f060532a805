"""RFC 6962 Merkle tree hashing, proofs and proof verification, independent of any storage.

Proof generation is written over "the hash of leaves [lo, hi)" supplied by the caller, so the
same code serves the database-backed tree (with its subtree cache) and in-memory lists (the CLI
verifier). Verification follows RFC 9162 sections 2.1.3.2 and 2.1.4.2 step by step.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()

RangeHasher = Callable[[int, int], bytes]


class ProofError(ValueError):
    """A proof does not verify, or the arguments cannot describe one."""


def hash_leaf(data: bytes) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def hash_children(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two strictly smaller than n (n >= 2): RFC 6962's k."""
    return 1 << ((n - 1).bit_length() - 1)


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH over already-hashed leaves."""
    compact = CompactRange()
    for leaf in leaf_hashes:
        compact.push(leaf)
    return compact.root()


def complete_subtrees(lo: int, hi: int) -> list[tuple[int, int]]:
    """[lo, hi) as maximal aligned complete subtrees, left to right, as (level, index).

    For the ranges RFC 6962's recursion produces (lo aligned to a power of two >= hi - lo) the
    right fold of these subtrees' hashes is exactly MTH(D[lo:hi]).
    """
    out: list[tuple[int, int]] = []
    while lo < hi:
        level = (lo & -lo).bit_length() - 1 if lo else (hi - lo).bit_length() - 1
        while (1 << level) > hi - lo:
            level -= 1
        out.append((level, lo >> level))
        lo += 1 << level
    return out


def fold_right(hashes: Sequence[bytes]) -> bytes:
    if not hashes:
        return EMPTY_ROOT
    acc = hashes[-1]
    for left in reversed(hashes[:-1]):
        acc = hash_children(left, acc)
    return acc


class CompactRange:
    """Streaming MTH in O(log n) memory: a stack of complete subtrees, largest first.

    ``on_node(level, index, hash)`` is told about every complete subtree as it forms, which is
    how the subtree cache is filled and checked without a second pass.
    """

    def __init__(self, on_node: Callable[[int, int, bytes], None] | None = None) -> None:
        self.size = 0
        self._stack: list[tuple[int, bytes]] = []
        self._on_node = on_node

    def push(self, leaf_hash: bytes) -> None:
        level, node = 0, leaf_hash
        self.size += 1
        while self._stack and self._stack[-1][0] == level:
            _, left = self._stack.pop()
            node = hash_children(left, node)
            level += 1
            if self._on_node is not None:
                self._on_node(level, (self.size >> level) - 1, node)
        self._stack.append((level, node))

    def root(self) -> bytes:
        return fold_right([h for _, h in self._stack])


def _check_tree_size(size: int) -> None:
    if size < 0:
        raise ProofError("tree size must not be negative")


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose MTHs make up PATH(index, D[0:size]), bottom first (RFC 6962 2.1.1)."""
    _check_tree_size(size)
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of size {size}")
    out: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = split_point(hi - lo)
        if index < lo + k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo = lo + k
    out.reverse()
    return out


def consistency_ranges(old: int, new: int) -> list[tuple[int, int]]:
    """The leaf ranges whose MTHs make up PROOF(old, D[0:new]) (RFC 6962 2.1.2)."""
    _check_tree_size(old)
    if old > new:
        raise ProofError(f"old tree size {old} is larger than new tree size {new}")
    if old == 0 or old == new:
        return []
    out: list[tuple[int, int]] = []
    lo, hi, m, complete = 0, new, old, True
    while True:
        n = hi - lo
        if m == n:
            if not complete:
                out.append((lo, hi))
            break
        k = split_point(n)
        if m <= k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo, m, complete = lo + k, m - k, False
    out.reverse()
    return out


def inclusion_proof(index: int, size: int, range_hash: RangeHasher) -> list[bytes]:
    return [range_hash(lo, hi) for lo, hi in inclusion_ranges(index, size)]


def consistency_proof(old: int, new: int, range_hash: RangeHasher) -> list[bytes]:
    return [range_hash(lo, hi) for lo, hi in consistency_ranges(old, new)]


def list_range_hasher(leaf_hashes: Sequence[bytes]) -> RangeHasher:
    def range_hash(lo: int, hi: int) -> bytes:
        return root_of(leaf_hashes[lo:hi])

    return range_hash


def verify_inclusion(
    index: int, size: int, leaf_hash: bytes, proof: Iterable[bytes], root: bytes
) -> None:
    """RFC 9162 2.1.3.2; raises ProofError unless ``leaf_hash`` is leaf ``index`` of ``root``."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of size {size}")
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = hash_children(p, r)
            if not fn & 1:
                while not (fn & 1 or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:
            r = hash_children(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is too short")
    if r != root:
        raise ProofError("inclusion proof does not lead to the root hash")


def verify_consistency(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 2.1.4.2; raises ProofError unless tree ``old`` is a prefix of tree ``new``."""
    if not 0 <= old <= new:
        raise ProofError(f"cannot prove consistency from size {old} to size {new}")
    if old == new:
        if proof:
            raise ProofError("consistency proof between equal sizes must be empty")
        if old_root != new_root:
            raise ProofError("equal tree sizes with different root hashes")
        return
    if old == 0:
        # Every tree extends the empty tree; there is nothing to prove.
        if proof:
            raise ProofError("consistency proof from the empty tree must be empty")
        return
    if not proof:
        raise ProofError("consistency proof is empty")
    path = list(proof)
    if old & (old - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = hash_children(c, fr)
            sr = hash_children(c, sr)
            if not fn & 1:
                while not (fn & 1 or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:
            sr = hash_children(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is too short")
    if fr != old_root:
        raise ProofError("consistency proof does not lead to the old root hash")
    if sr != new_root:
        raise ProofError("consistency proof does not lead to the new root hash")
