"""The Gram triple with C = A A^T - A_0 A_0^T: shares reconstruct X X^T, and each server's share stays
uniform to it. The attacks: S1 tests a parity that holds when its share is not blinded by the seed's C_0,
and S0 (which knows the seed) looks for A_1 in it. The wire tap on a round is tests/protocols/test_two_server_triple.py."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from secagg.beaver import SeededGramTriple, deal_gram, gram_share, party0_gram_share, triple_from_seed
from secagg.errors import AlreadyUsed
from secagg.int_gram import ring_gram
from secagg.randomness import SeededRandomness


def _parity_of_s1_residual(a1: np.ndarray, c1: np.ndarray) -> np.ndarray:
    """S1's attack: the low bit of diag(C_1 - A_1 A_1^T). Without C_0 it is the low bit of 2 <A_0, A_1>: always 0."""
    return (np.diagonal(c1 - ring_gram(a1)) & np.uint64(1)).astype(np.int64)


def test_second_server_cannot_tell_its_triple_share_from_uniform():
    rng = SeededRandomness(11)
    bits, broken = [], []
    for _ in range(300):
        seed = rng.bytes(32)
        t0, t1 = deal_gram(4, 5, rng, seed)
        bits.append(_parity_of_s1_residual(t1.a, t1.c))
        unblinded = t1.c + t0.c  # what S1 would hold if the dealer skipped the seed's C_0
        broken.append(_parity_of_s1_residual(t1.a, unblinded))
    bits, broken = np.concatenate(bits), np.concatenate(broken)
    assert broken.sum() == 0  # the attack works on a triple without C_0
    assert stats.binomtest(int(bits.sum()), bits.size).pvalue > 1e-6  # and sees a fair coin on the real one
    c1_bytes = np.concatenate([deal_gram(6, 3, rng, rng.bytes(32))[1].c.view(np.uint8).ravel() for _ in range(100)])
    assert stats.chisquare(np.bincount(c1_bytes, minlength=256)).pvalue > 1e-6


def test_the_seed_determines_party_0s_share_only():
    """S0 knows the seed: its share is the same whatever the dealer's other randomness, so its view carries
    nothing about A_1 (which masks X_1 in the X_1 - A_1 it receives)."""
    seed = b"\x07" * 32
    t0a, t1a = deal_gram(3, 9, SeededRandomness(1), seed)
    t0b, t1b = deal_gram(3, 9, SeededRandomness(2), seed)
    assert np.array_equal(t0a.a, t0b.a) and np.array_equal(t0a.c, t0b.c)
    assert not np.array_equal(t1a.a, t1b.a) and not np.array_equal(t1a.c, t1b.c)
    a = t0a.a + t1a.a
    assert np.array_equal(t0a.c + t1a.c, ring_gram(a) - ring_gram(t0a.a))


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 6), d=st.integers(1, 70), seed=st.integers(0, 2**32 - 1))
def test_seeded_share_matches_the_materialized_one(n, d, seed):
    rng = SeededRandomness(seed)
    dealer_seed = rng.bytes(32)
    t0, t1 = deal_gram(n, d, rng, dealer_seed)
    x = rng.uint64(n * d).reshape(n, d)
    x0 = rng.uint64(n * d).reshape(n, d)
    x1 = x - x0
    seeded = SeededGramTriple(dealer_seed, n, d)
    half0 = seeded.mask(x0)
    assert np.array_equal(half0, x0 - triple_from_seed(dealer_seed, n, d).a)
    p = x0 + (x1 - t1.a)  # S0: its X_0 plus the X_1 - A_1 that S1 opens
    e = half0 + (x1 - t1.a)
    g0 = seeded.share(p)
    assert np.array_equal(g0, party0_gram_share(e + t0.a, triple_from_seed(dealer_seed, n, d)))
    assert np.array_equal(g0 + gram_share(1, e, t1), ring_gram(x))
    with pytest.raises(AlreadyUsed):
        seeded.mask(x0)
