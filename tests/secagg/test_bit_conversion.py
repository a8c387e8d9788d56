"""Bit-sliced XOR sharing, AND gates, daBit and edaBit conversion to additive shares, and the hash zero test."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from secagg.bit_sharing import expand_planes, from_planes, offset, share_planes, to_planes, unpack, words
from secagg.boolean import and_masked, and_share, deal_and_triples
from secagg.dabits import deal_dabits, recompose
from secagg.edabits import deal_edabits, from_sum
from secagg.equality import blinded_share, deal_blinding, zero_digest
from secagg.errors import AlreadyUsed
from secagg.randomness import SeededRandomness


@given(bits=st.integers(1, 64), d=st.integers(1, 200), seed=st.integers(0, 2**32 - 1))
def test_planes_round_trip_and_shares_recombine(bits, d, seed):
    rng = np.random.default_rng(seed)
    u = rng.integers(0, 2**64, (3, d), dtype=np.uint64) & np.uint64(2**bits - 1)
    planes = to_planes(u, bits)
    assert planes.shape == (3, bits, words(d))
    i, k, c = seed % 3, seed % bits, seed % d  # the layout: bit c % 64 of word c // 64 of plane k
    assert (int(planes[i, k, c // 64]) >> (c % 64)) & 1 == (int(u[i, c]) >> k) & 1
    assert np.array_equal(unpack(planes, d), ((u[:, None, :] >> np.arange(bits, dtype=np.uint64)[:, None]) & np.uint64(1)))
    assert np.array_equal(from_planes(planes, d), u)
    p1 = share_planes(planes, b"\x07" * 32, b"t")
    assert np.array_equal(from_planes(p1 ^ expand_planes(b"\x07" * 32, planes.shape, b"t"), d), u)


@settings(max_examples=40)
@given(bits=st.integers(1, 63), d=st.integers(1, 150), seed=st.integers(0, 2**32 - 1))
def test_dabit_conversion_gives_additive_shares_of_the_recomposition(bits, d, seed):
    rng = SeededRandomness(seed)
    raw = np.random.default_rng(seed).integers(0, 2**64, (2, bits, words(d)), dtype=np.uint64)  # any XOR shares are bits
    v0 = np.random.default_rng(seed + 1).integers(0, 2**64, raw.shape, dtype=np.uint64)
    v1 = raw ^ v0
    t0, t1 = deal_dabits((2, bits), d, rng, rng.bytes(32))
    opened = (v0 ^ t0.planes) ^ (v1 ^ t1.planes)
    total = recompose(0, opened, t0, d) + recompose(1, opened, t1, d)
    assert np.array_equal(total, from_planes(raw, d))
    with pytest.raises(AlreadyUsed):
        recompose(0, opened, t0, d)


def test_opened_digits_are_uniform_whatever_the_input():
    rng = SeededRandomness(3)
    d = 4096
    zeros = to_planes(offset(np.zeros((2, d), dtype=np.uint64), 16), 16)  # offset binary of 0: digit 15 set, the rest clear
    t0, t1 = deal_dabits((2, 16), d, rng, rng.bytes(32))
    opened = zeros ^ t0.planes ^ t1.planes
    counts = np.bincount(unpack(opened, d).ravel(), minlength=2)
    assert stats.binomtest(int(counts[1]), int(counts.sum())).pvalue > 1e-6


@given(seed=st.integers(0, 2**32 - 1), flip=st.integers(0, 63), at=st.integers(0, 99))
def test_zero_digests_agree_exactly_for_zero(seed, flip, at):
    z0 = np.random.default_rng(seed).integers(0, 2**64, 100, dtype=np.uint64)
    z1 = np.uint64(0) - z0
    assert zero_digest(0, z0, b"c") == zero_digest(1, z1, b"c")
    z1[at] ^= np.uint64(1 << flip)  # any nonzero z
    assert zero_digest(0, z0, b"c") != zero_digest(1, z1, b"c")
    assert zero_digest(0, z0, b"c") != zero_digest(1, np.uint64(0) - z0, b"other context")


@given(seed=st.integers(0, 2**32 - 1), size=st.integers(1, 50))
def test_and_gates_on_xor_shares(seed, size):
    rng = SeededRandomness(seed)
    gen = np.random.default_rng(seed)
    x, y, x0, y0 = (gen.integers(0, 2**64, (2, size), dtype=np.uint64) for _ in range(4))
    t0, t1 = deal_and_triples((2, size), rng, rng.bytes(32))
    for layer in range(2):
        tr0, tr1 = t0.take(layer), t1.take(layer)
        opened = and_masked(x0[layer], y0[layer], tr0) ^ and_masked(x[layer] ^ x0[layer], y[layer] ^ y0[layer], tr1)
        assert np.array_equal(and_share(0, opened, tr0) ^ and_share(1, opened, tr1), x[layer] & y[layer])
    with pytest.raises(AlreadyUsed):
        t0.take(1)


@given(bits=st.integers(1, 40), d=st.integers(1, 100), seed=st.integers(0, 2**32 - 1))
def test_edabits_recover_u_from_the_opened_sum_and_carry(bits, d, seed):
    rng = SeededRandomness(seed)
    u = np.random.default_rng(seed).integers(0, 2**bits, d, dtype=np.uint64)
    t0, t1 = deal_edabits((), bits, d, rng, rng.bytes(32))
    r = from_planes(t0.planes ^ t1.planes, d)
    assert np.array_equal(r, t0.arith + t1.arith) and np.all(r < 2**bits)
    total = u + r  # what the circuit computes on shares: the sum digits (opened) and the carry-out (shared)
    opened = to_planes(total & np.uint64(2**bits - 1), bits)
    carry = total >> np.uint64(bits)
    c0 = np.random.default_rng(seed + 1).integers(0, 2**64, d, dtype=np.uint64)
    assert np.array_equal(from_sum(0, opened, c0, t0, d) + from_sum(1, opened, carry - c0, t1, d), u)


def _valuation(v: int) -> int:
    return 64 if v == 0 else (v & -v).bit_length() - 1


@settings(max_examples=40, deadline=None)
@given(k=st.integers(0, 64), odd=st.integers(0, 2**63 - 1), d=st.integers(1, 9), seed=st.integers(0, 2**31))
def test_blinding_keeps_zero_and_nonzero_and_the_valuation_only(k, odd, d, seed):
    """w = r z with r a secret odd unit: w = 0 iff z = 0 (no false acceptance, even for z = 2^63), v2(w) = v2(z)."""
    z = np.full(d, ((2 * odd + 1) << k) % 2**64 if k < 64 else 0, dtype=np.uint64)
    rng = SeededRandomness(seed.to_bytes(8, "big"))
    t0, t1 = deal_blinding((d,), rng, rng.bytes(32))
    z0 = rng.uint64(d)
    e = (z0 - t0.a) + (z - z0 - t1.a)  # the opened z - a
    w0, w1 = blinded_share(0, e, t0), blinded_share(1, e, t1)
    assert np.all(((t0.r + t1.r) & np.uint64(1)) == 1)
    assert np.array_equal(w0 + w1, (t0.r + t1.r) * z)
    assert all(_valuation(int(v)) == k for v in w0 + w1)
    assert (zero_digest(0, w0, b"c") == zero_digest(1, w1, b"c")) == (k == 64)
    with pytest.raises(AlreadyUsed):
        blinded_share(0, e, t0)


@pytest.mark.parametrize("k", [0, 7, 40])
def test_blinded_residual_is_uniform_given_its_valuation(k):
    """For z = 2^k u the blinded w = 2^k (r u mod 2^(64-k)): its odd part is uniform whatever u is, so two residuals
    with the same valuation (u = 1 and u = 39, e.g. ||x||^2 - B = 2^L q for two q) are indistinguishable."""
    counts = []
    for u in (1, 39):
        rng = SeededRandomness(bytes([k, u]))
        t0, t1 = deal_blinding((4000,), rng, rng.bytes(32))
        w = (t0.r + t1.r) * np.uint64((u << k) % 2**64)
        low = (w >> np.uint64(k)) & np.uint64(15)  # the 3 bits above the (always set) lowest bit of the odd part
        assert np.all(low & np.uint64(1) == 1)
        counts.append(np.bincount((low >> np.uint64(1)).astype(np.int64), minlength=8))
    for c in counts:
        assert stats.chisquare(c).pvalue > 1e-4
    assert stats.chi2_contingency(np.array(counts)).pvalue > 1e-4
