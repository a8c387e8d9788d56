"""The norm triple (the Gram triple's diagonal, `secagg.norm_triple`): shares reconstruct ||x_i||^2 exactly mod 2^64,
each server's share stays uniform to it, a triple masks one matrix only. The attacks: S1 tests a parity that holds
when its c_1 is not blinded by the seed's c_0; a reused triple; a norm that wraps mod 2^64 (the residue is what the
shares give: the range check before it is what keeps a norm below 2^64, tests/protocols/test_two_server_norm_triple.py)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from secagg.beaver import triple_from_seed
from secagg.errors import AlreadyUsed
from secagg.int_gram import CHUNK, ROW_BLOCK, row_dots, row_squares
from secagg.norm_triple import NORMS_A, NormTriple, SeededNormTriple, deal_norms, norm_share, norms_from_seed
from secagg.randomness import SeededRandomness


def _exact_norms(x: np.ndarray) -> list[int]:
    return [sum(int(v) ** 2 for v in row) % 2**64 for row in x]


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 6), d=st.integers(1, 2 * CHUNK + 3), seed=st.integers(0, 2**32 - 1), extreme=st.booleans())
def test_shares_reconstruct_the_exact_norms_mod_2_64(n, d, seed, extreme):
    """Both parties' shares (S0's from the seed, block by block, and the materialized one) add to sum_j x_ij^2 mod
    2^64, Python's integers, for uniform X and for X at the ring's extremes (every product wraps)."""
    rng = SeededRandomness(seed)
    dealer_seed = rng.bytes(32)
    t0, t1 = deal_norms(n, d, rng, dealer_seed)
    x = rng.uint64(n * d).reshape(n, d)
    if extreme:
        x = np.where(x & np.uint64(1), np.uint64(2**63), np.uint64(2**64 - 1))
    x0 = rng.uint64(n * d).reshape(n, d)
    x1 = x - x0
    seeded = SeededNormTriple(dealer_seed, n, d)
    half0, half1 = seeded.mask(x0), x1 - t1.a  # what S0 and S1 open
    assert np.array_equal(half0, x0 - norms_from_seed(dealer_seed, n, d).a)
    e = half0 + half1
    g0 = seeded.share(x0, plus=half1)  # P = X_0 + (X_1 - A_1)
    assert np.array_equal(g0, norm_share(0, e, t0))
    g1 = norm_share(1, e, t1)
    assert [int(v) for v in g0 + g1] == _exact_norms(x)


def test_the_dealers_c_is_the_diagonal_of_a_gram_triples_c():
    """c_0 + c_1 = ||a_i||^2 - ||a0_i||^2, the diagonal of C = A A^T - A_0 A_0^T (`secagg.beaver`)."""
    rng = SeededRandomness(3)
    t0, t1 = deal_norms(4, 37, rng, rng.bytes(32))
    a = t0.a + t1.a
    assert [int(v) for v in t0.c + t1.c] == [(p - q) % 2**64 for p, q in zip(_exact_norms(a), _exact_norms(t0.a))]


def _parity_of_s1_residual(t1: NormTriple) -> np.ndarray:
    """S1's attack: the low bit of c_1 - ||a1_i||^2. Without c_0 it is the low bit of 2 <a0_i, a1_i>: always 0."""
    return ((t1.c - row_dots(t1.a)) & np.uint64(1)).astype(np.int64)


def test_second_server_cannot_tell_its_share_from_uniform():
    rng = SeededRandomness(11)
    bits, broken = [], []
    for _ in range(400):
        t0, t1 = deal_norms(4, 5, rng, rng.bytes(32))
        bits.append(_parity_of_s1_residual(t1))
        broken.append(_parity_of_s1_residual(NormTriple(t1.a, t1.c + t0.c)))  # a dealer that skipped c_0
    bits, broken = np.concatenate(bits), np.concatenate(broken)
    assert broken.sum() == 0  # the attack works on a triple without c_0
    assert stats.binomtest(int(bits.sum()), bits.size).pvalue > 1e-6  # and sees a fair coin on the real one
    c1_bytes = np.concatenate([deal_norms(8, 3, rng, rng.bytes(32))[1].c.view(np.uint8) for _ in range(200)])
    assert stats.chisquare(np.bincount(c1_bytes, minlength=256)).pvalue > 1e-6


def test_the_seed_determines_party_0s_share_only_in_domains_of_its_own():
    """S0's share is the same whatever the dealer's other randomness (its view carries nothing about A_1), and the
    same seed stands for other matrices as a Gram triple's share (domains NORMS_A, NORMS_C)."""
    seed = b"\x07" * 32
    t0a, t1a = deal_norms(3, 9, SeededRandomness(1), seed)
    t0b, t1b = deal_norms(3, 9, SeededRandomness(2), seed)
    assert np.array_equal(t0a.a, t0b.a) and np.array_equal(t0a.c, t0b.c)
    assert not np.array_equal(t1a.a, t1b.a) and not np.array_equal(t1a.c, t1b.c)
    gram = triple_from_seed(seed, 3, 9)
    assert not np.array_equal(t0a.a, gram.a) and not np.array_equal(t0a.c, np.diagonal(gram.c))
    assert NORMS_A != b"gram A"


def test_a_triple_masks_one_matrix_only():
    """Reuse of A on X and X' opens X - A and X' - A: their difference is X - X'. Every use is refused the second time."""
    rng = SeededRandomness(5)
    seed = rng.bytes(32)
    t0, t1 = deal_norms(2, 4, rng, seed)
    x = rng.uint64(8).reshape(2, 4)
    seeded = SeededNormTriple(seed, 2, 4)
    seeded.mask(x)
    with pytest.raises(AlreadyUsed, match="norm triple"):
        seeded.mask(x)
    norm_share(0, x, t0)
    norm_share(1, x, t1)
    for party, t in ((0, t0), (1, t1)):
        with pytest.raises(AlreadyUsed, match="reveals the difference"):
            norm_share(party, x, t)


def test_deal_refuses_empty_shapes():
    rng = SeededRandomness(0)
    for n, d in ((0, 3), (3, 0)):
        with pytest.raises(ValueError, match=f"n={n}, d={d}"):
            deal_norms(n, d, rng, bytes(32))


@settings(max_examples=10, deadline=None)
@given(n=st.integers(1, 4), d=st.sampled_from([1, CHUNK - 1, CHUNK + 1, ROW_BLOCK + 1]), seed=st.integers(0, 2**32 - 1))
def test_row_squares_of_a_sum_formed_block_by_block(n, d, seed):
    """row_squares(a, plus) = sum_j (a + plus)_ij^2 mod 2^64 with P formed ROW_BLOCK columns of a row at a time, at the edges."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2**64, (n, d), dtype=np.uint64, endpoint=False)
    plus = rng.integers(0, 2**64, (n, d), dtype=np.uint64, endpoint=False)
    assert [int(v) for v in row_squares(a, plus)] == _exact_norms(a + plus)
    assert np.array_equal(row_squares(a), row_dots(a))
    with pytest.raises(ValueError, match="plus must have a's shape"):
        row_squares(a, plus[:, :-1] if d > 1 else np.zeros((n + 1, 1), dtype=np.uint64))
    with pytest.raises(TypeError, match="uint64"):
        row_squares(a.astype(np.int64))
