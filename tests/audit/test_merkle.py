"""RFC 6962 hashing and proofs against independent implementations.

Inclusion proofs are checked with sigstore-python's verifier (Trillian's algorithm, the code that
checks Rekor entries); consistency proofs against a literal transcription of RFC 6962 section
2.1.2 below, plus the RFC's own structure (old root recomputed from the proof).
"""

from __future__ import annotations

import hashlib
import random
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sigstore._internal import merkle as sigstore_merkle
from sigstore.errors import VerificationError

from app.audit import merkle

# A straightforward reference implementation, RFC 6962 section 2.1, over raw leaf data --------


def ref_hash(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def ref_k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: list[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return ref_hash(b"")
    if n == 1:
        return ref_hash(b"\x00" + d[0])
    k = ref_k(n)
    return ref_hash(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:]))


def ref_path(m: int, d: list[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = ref_k(n)
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = ref_k(n)
    if m <= k:
        return [*ref_subproof(m, d[:k], b), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


def ref_proof(m: int, d: list[bytes]) -> list[bytes]:
    return ref_subproof(m, d, True)


# Helpers -------------------------------------------------------------------------------------


def sigstore_verify_inclusion(
    leaf_data: bytes, index: int, size: int, proof: list[bytes], root: bytes
) -> None:
    """sigstore-python's verify_merkle_inclusion, fed a duck-typed log entry."""
    entry = SimpleNamespace(
        _inner=SimpleNamespace(
            canonicalized_body=leaf_data,
            inclusion_proof=SimpleNamespace(
                log_index=index, tree_size=size, hashes=proof, root_hash=root
            ),
        )
    )
    sigstore_merkle.verify_merkle_inclusion(entry)  # type: ignore[arg-type]


def leaves(n: int) -> list[bytes]:
    return [f"leaf {i}".encode() for i in range(n)]


DATA = leaves(140)
HASHES = [merkle.hash_leaf(d) for d in DATA]
RANGE = merkle.list_range_hasher(HASHES)


# Tests ---------------------------------------------------------------------------------------


def test_empty_and_single_leaf_roots_follow_rfc_6962() -> None:
    assert merkle.root_of([]) == hashlib.sha256(b"").digest()
    assert merkle.root_of([merkle.hash_leaf(b"x")]) == hashlib.sha256(b"\x00x").digest()


@pytest.mark.parametrize("size", range(0, 140))
def test_roots_match_reference(size: int) -> None:
    assert merkle.root_of(HASHES[:size]) == ref_mth(DATA[:size])


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100, 129, 140])
def test_every_inclusion_proof_verifies_with_sigstore_and_matches_reference(size: int) -> None:
    root = ref_mth(DATA[:size])
    for index in range(size):
        proof = merkle.inclusion_proof(index, size, RANGE)
        assert proof == ref_path(index, DATA[:size])
        sigstore_verify_inclusion(DATA[index], index, size, proof, root)
        merkle.verify_inclusion(index, size, HASHES[index], proof, root)


def test_sigstore_rejects_what_our_verifier_rejects() -> None:
    size, index = 77, 40
    root = ref_mth(DATA[:size])
    proof = merkle.inclusion_proof(index, size, RANGE)
    bad = [*proof]
    bad[2] = bytes(32)
    with pytest.raises(VerificationError):
        sigstore_verify_inclusion(DATA[index], index, size, bad, root)
    with pytest.raises(merkle.ProofError):
        merkle.verify_inclusion(index, size, HASHES[index], bad, root)
    with pytest.raises(VerificationError):
        sigstore_verify_inclusion(DATA[index + 1], index, size, proof, root)
    with pytest.raises(merkle.ProofError):
        merkle.verify_inclusion(index, size, HASHES[index + 1], proof, root)


def test_every_consistency_proof_matches_reference_and_verifies() -> None:
    for new in range(1, 70):
        new_root = ref_mth(DATA[:new])
        for old in range(1, new + 1):
            proof = merkle.consistency_proof(old, new, RANGE)
            assert proof == (ref_proof(old, DATA[:new]) if old < new else [])
            merkle.verify_consistency(old, new, ref_mth(DATA[:old]), new_root, proof)


def test_consistency_from_the_empty_tree_is_trivial() -> None:
    assert merkle.consistency_proof(0, 10, RANGE) == []
    merkle.verify_consistency(0, 10, merkle.EMPTY_ROOT, ref_mth(DATA[:10]), [])


@pytest.mark.parametrize(
    ("old", "new"), [(1, 2), (3, 7), (4, 8), (5, 5), (6, 64), (63, 64), (64, 65), (100, 139)]
)
def test_tampered_consistency_proofs_fail(old: int, new: int) -> None:
    old_root, new_root = ref_mth(DATA[:old]), ref_mth(DATA[:new])
    proof = merkle.consistency_proof(old, new, RANGE)
    for i in range(len(proof)):
        bad = [*proof]
        bad[i] = bytes(32)
        with pytest.raises(merkle.ProofError):
            merkle.verify_consistency(old, new, old_root, new_root, bad)
    other = ref_mth([b"forged", *DATA[1:old]])
    with pytest.raises(merkle.ProofError):
        merkle.verify_consistency(old, new, other, new_root, proof)
    if old < new:
        with pytest.raises(merkle.ProofError):
            merkle.verify_consistency(old, new, old_root, new_root, proof[:-1])
        with pytest.raises(merkle.ProofError):
            merkle.verify_consistency(old, new, old_root, new_root, [*proof, bytes(32)])


def test_inclusion_proof_for_wrong_size_or_index_fails() -> None:
    root = ref_mth(DATA[:50])
    proof = merkle.inclusion_proof(10, 50, RANGE)
    # (Sizes 50 and 51 give index 10 paths of the same shape: only the signed checkpoint binds a
    # root to its size. A size with a different path shape must fail.)
    with pytest.raises(merkle.ProofError):
        merkle.verify_inclusion(10, 70, HASHES[10], proof, root)
    with pytest.raises(merkle.ProofError):
        merkle.verify_inclusion(10, 16, HASHES[10], proof, root)
    with pytest.raises(merkle.ProofError):
        merkle.verify_inclusion(11, 50, HASHES[10], proof, root)
    with pytest.raises(merkle.ProofError):
        merkle.verify_inclusion(50, 50, HASHES[10], proof, root)
    with pytest.raises(merkle.ProofError):
        merkle.inclusion_proof(50, 50, RANGE)
    with pytest.raises(merkle.ProofError):
        merkle.consistency_proof(51, 50, RANGE)


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=1, max_value=3000), st.data())
def test_large_random_trees_against_references(size: int, data: st.DataObject) -> None:
    rng = random.Random(size)
    leaf_data = [rng.randbytes(8) for _ in range(size)]
    hashes = [merkle.hash_leaf(d) for d in leaf_data]
    range_hash = merkle.list_range_hasher(hashes)
    root = ref_mth(leaf_data)
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    proof = merkle.inclusion_proof(index, size, range_hash)
    sigstore_verify_inclusion(leaf_data[index], index, size, proof, root)
    old = data.draw(st.integers(min_value=1, max_value=size))
    consistency = merkle.consistency_proof(old, size, range_hash)
    assert consistency == (ref_proof(old, leaf_data) if old < size else [])
    merkle.verify_consistency(old, size, ref_mth(leaf_data[:old]), root, consistency)


def test_compact_range_reports_every_complete_subtree() -> None:
    seen: dict[tuple[int, int], bytes] = {}
    compact = merkle.CompactRange(lambda level, idx, h: seen.__setitem__((level, idx), h))
    for h in HASHES[:100]:
        compact.push(h)
    assert compact.root() == ref_mth(DATA[:100])
    for (level, idx), value in seen.items():
        assert value == ref_mth(DATA[idx << level : (idx + 1) << level])
    assert (6, 0) in seen and (5, 2) in seen and (2, 24) in seen and (7, 0) not in seen
