"""Exact Z_2^64 products with float64 BLAS, against Python's exact integers."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secagg.int_gram import CHUNK, LIMB_BITS, NARROW_BITS, _limbs, narrow_gram, ring_gram, row_dots, symmetric_gram

EDGES = [0, 1, 2**21 - 1, 2**21, 2**22 - 1, 2**43, 2**44 - 1, 2**63 - 1, 2**63, 2**64 - 2**21, 2**64 - 1]


def _exact(a, b):
    return np.array((a.astype(object) @ b.astype(object).T) % 2**64, dtype=np.uint64)


def _matrix(draw, rows, d):
    """Uniform entries, with ring edges (carries, sign boundaries, limb boundaries) planted at random places."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2**64, size=(rows, d), dtype=np.uint64, endpoint=False)
    for _ in range(draw(st.integers(0, 6))):
        x[draw(st.integers(0, rows - 1)), draw(st.integers(0, d - 1))] = draw(st.sampled_from(EDGES))
    return x


@settings(max_examples=60, deadline=None)
@given(data=st.data(), n=st.integers(1, 7), m=st.integers(1, 7), d=st.integers(1, 40))
def test_products_equal_exact_integer_products_mod_2_64(data, n, m, d):
    a, b = _matrix(data.draw, n, d), _matrix(data.draw, m, d)
    assert np.array_equal(ring_gram(a, b), _exact(a, b))
    assert np.array_equal(ring_gram(a), _exact(a, a))


@settings(max_examples=12, deadline=None)
@given(data=st.data(), d=st.sampled_from([CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 3]), worst=st.booleans())
def test_exact_around_the_float64_limit(data, d, worst):
    """d near CHUNK, where one chunk's limb products sum to 2**53; `worst` fills the rows with the limb extremes."""
    a, b = _matrix(data.draw, 3, d), _matrix(data.draw, 2, d)
    if worst:  # every limb -2**21 (u = 0) or 2**21 - 1 (all digit bits set), mixed so sums are odd
        low, high = np.uint64((2**64 - 2**21 - 2**43) % 2**64), np.uint64((2**64 - 1 - 2**21 - 2**43) % 2**64)
        a[:] = low
        a[1, ::3] = high
        b[:] = low
        b[1, 1::2] = high
        assert np.abs(_limbs(a)).max() == 2 ** (LIMB_BITS - 1)
    assert np.array_equal(ring_gram(a, b), _exact(a, b))
    assert np.array_equal(ring_gram(a), _exact(a, a))


def test_the_column_chunk_is_what_keeps_float64_exact():
    """The attack on the bound: the same limbs multiplied over 2 CHUNK + 1 columns in one float64 product lose bits."""
    d = 2 * CHUNK + 1
    x = np.full((1, d), (2**64 - 2**21 - 2**43) % 2**64, dtype=np.uint64)  # every limb -2**21
    x[0, ::2] = (2**64 - 2**21 - 2**43 + 1) % 2**64  # limb 0 is -2**21 + 1 there: odd products
    limb0 = _limbs(x)[0]
    exact = sum(int(v) * int(v) for v in limb0[0])
    assert int((limb0 @ limb0.T)[0, 0]) != exact  # one product over all columns rounds
    assert int(ring_gram(x)[0, 0]) == _exact(x, x)[0, 0]


def test_matches_numpy_integer_einsum_at_a_realistic_size():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 2**64, size=(20, 5000), dtype=np.uint64)
    b = rng.integers(0, 2**64, size=(9, 5000), dtype=np.uint64)
    assert np.array_equal(ring_gram(a, b), np.einsum("ik,jk->ij", a, b))
    assert np.array_equal(ring_gram(a), np.einsum("ik,jk->ij", a, a))


def test_refuses_other_dtypes_and_mismatched_columns():
    a = np.zeros((2, 3), dtype=np.uint64)
    with pytest.raises(TypeError, match="a must be a uint64"):
        ring_gram(a.astype(np.int64))
    with pytest.raises(TypeError, match="b must be a uint64"):
        ring_gram(a, [[1, 2, 3]])
    with pytest.raises(ValueError, match="same number of columns"):
        ring_gram(a, np.zeros((2, 4), dtype=np.uint64))
    with pytest.raises(ValueError, match="2-D"):
        ring_gram(np.zeros(3, dtype=np.uint64))


@settings(max_examples=15, deadline=None)
@given(data=st.data(), n=st.integers(1, 6), d=st.sampled_from([1, 7, CHUNK + 9]))
def test_beaver_gram_shares_reconstruct_the_exact_gram_matrix(data, n, d):
    from secagg import SeededRandomness
    from secagg.beaver import deal_gram, gram_share

    x = _matrix(data.draw, n, d)
    rng = SeededRandomness(data.draw(st.integers(0, 2**32 - 1)))
    t0, t1 = deal_gram(n, d, rng, rng.bytes(32))
    e = x - (t0.a + t1.a)  # the opened X - A
    assert np.array_equal(t0.c + t1.c, _exact(t0.a + t1.a, t0.a + t1.a) - _exact(t0.a, t0.a))  # C = A A^T - A_0 A_0^T
    assert np.array_equal(gram_share(0, e, t0) + gram_share(1, e, t1), _exact(x, x))


NARROW_EDGES = [0, 1, 2**21 - 1, 2**21, 2**22 - 1, 2**22, 2**43 - 1, 2**43, 2**44 - 1, 2**44, 2**63, 2**64 - 2**21, 2**64 - 1]


def _exact_mod(a, b, bits):
    return np.array((a.astype(object) @ b.astype(object).T) % 2**bits, dtype=np.uint64)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), n=st.integers(1, 7), m=st.integers(1, 7), d=st.sampled_from([1, 2, 5, 40, CHUNK - 1, CHUNK + 1, 2 * CHUNK + 4]), worst=st.booleans())
def test_narrow_products_equal_exact_integer_products_mod_2_44(data, n, m, d, worst):
    """Against Python integers, with 22-bit limb edges planted; `worst`: every limb at -2**21 or 2**21 - 1, so
    each CHUNK-column step sums limb products of the largest magnitude (2**53 in all)."""
    a, b = _matrix(data.draw, n, d), _matrix(data.draw, m, d)
    for x in (a, b):
        for _ in range(data.draw(st.integers(0, 6))):
            x[data.draw(st.integers(0, x.shape[0] - 1)), data.draw(st.integers(0, d - 1))] = data.draw(st.sampled_from(NARROW_EDGES))
        if worst:  # u = x + 2**21 + 2**43 with both 22-bit digits 0 (limbs -2**21) or all ones (2**21 - 1)
            x[:] = np.uint64((2**64 - 2**21 - 2**43) % 2**64)
            x[0, ::3] = np.uint64((2**44 - 1 - 2**21 - 2**43) % 2**64)
    if worst:
        assert 2 ** (LIMB_BITS - 1) - 1 <= np.abs(_limbs(a, None, LIMB_BITS, 2)).max() <= 2 ** (LIMB_BITS - 1)  # at the extremes
    assert np.array_equal(narrow_gram(a, b), _exact_mod(a, b, NARROW_BITS))
    assert np.array_equal(narrow_gram(a), _exact_mod(a, a, NARROW_BITS))
    assert np.array_equal(row_dots(a), np.diagonal(_exact(a, a)))
    assert np.array_equal(row_dots(a, a[::-1].copy()), np.diagonal(_exact(a, a[::-1])))
    plus = _matrix(data.draw, n, d)
    p = a + plus
    assert np.array_equal(symmetric_gram(a, plus), _exact(p, p))  # (a + plus) formed a block at a time
    narrow = symmetric_gram(a, plus, narrow=True)
    off = ~np.eye(n, dtype=bool)
    assert np.array_equal(narrow[off], _exact_mod(p, p, NARROW_BITS)[off]) and np.array_equal(np.diagonal(narrow), np.diagonal(_exact(p, p)))
    assert np.array_equal(symmetric_gram(a, narrow=True), np.where(off, _exact_mod(a, a, NARROW_BITS), _exact(a, a)))


def test_narrow_products_refuse_what_ring_gram_refuses():
    a = np.zeros((2, 3), dtype=np.uint64)
    with pytest.raises(TypeError, match="a must be a uint64"):
        narrow_gram(a.astype(np.int64))
    with pytest.raises(ValueError, match="same number of columns"):
        narrow_gram(a, np.zeros((2, 4), dtype=np.uint64))
    with pytest.raises(ValueError, match="b must have"):
        row_dots(a, np.zeros((3, 3), dtype=np.uint64))
    with pytest.raises(ValueError, match="plus must have"):
        symmetric_gram(a, np.zeros((3, 3), dtype=np.uint64))


@settings(max_examples=15, deadline=None)
@given(data=st.data(), n=st.integers(1, 6), d=st.sampled_from([1, 7, 2100]))
def test_narrow_beaver_shares_reconstruct_the_gram_matrix_mod_2_44_and_its_diagonal_mod_2_64(data, n, d):
    from secagg import SeededRandomness
    from secagg.beaver import SeededGramTriple, deal_gram, gram_share, party0_gram_share, triple_from_seed

    x = _matrix(data.draw, n, d)
    rng = SeededRandomness(data.draw(st.integers(0, 2**32 - 1)))
    seed = rng.bytes(32)
    t0, t1 = deal_gram(n, d, rng, seed)
    e = x - (t0.a + t1.a)
    g = gram_share(0, e, t0, narrow=True) + gram_share(1, e, t1, narrow=True)
    off = ~np.eye(n, dtype=bool)
    assert np.array_equal(g[off] & np.uint64(2**NARROW_BITS - 1), _exact_mod(x, x, NARROW_BITS)[off])
    assert np.array_equal(np.diagonal(g), np.diagonal(_exact(x, x)))  # exact: a norm of 2**44 + c is not c
    seeded = SeededGramTriple(seed, n, d)  # S0's seeded share is the materialized one
    assert np.array_equal(seeded.share(e + t0.a, narrow=True), party0_gram_share(e + t0.a, triple_from_seed(seed, n, d), narrow=True))
