"""GF(2**61 - 1) arithmetic against Python integers, and Shamir sharing properties."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secagg import field, shamir
from secagg.errors import InconsistentShares
from secagg.randomness import SeededRandomness

P = field.P
elements = st.integers(0, P - 1)


@given(st.lists(st.tuples(elements, elements), min_size=1, max_size=50))
def test_mul_add_sub_match_python_ints(pairs):
    a = np.array([x for x, _ in pairs], dtype=np.uint64)
    b = np.array([y for _, y in pairs], dtype=np.uint64)
    assert [int(v) for v in field.mul(a, b)] == [x * y % P for x, y in pairs]
    assert [int(v) for v in field.add(a, b)] == [(x + y) % P for x, y in pairs]
    assert [int(v) for v in field.sub(a, b)] == [(x - y) % P for x, y in pairs]


@given(st.lists(elements, min_size=1, max_size=300))
def test_sum_and_product_match_python_ints(values):
    a = np.array(values, dtype=np.uint64)
    assert int(field.sum_last(a)) == sum(values) % P
    product = 1
    for v in values:
        product = product * v % P
    assert int(field.prod_last(a)) == product


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(0, 70), cols=st.integers(1, 70), data=st.data())
def test_dot_matches_python_ints_on_both_paths(rows, cols, data):
    """`dot` runs on Python integers up to `_SMALL_DOT` matrix elements and vectorized above:
    each is matrix @ vector mod p, elements drawn up to p - 1, in 1-D and 2-D."""
    matrix = np.array(data.draw(st.lists(elements, min_size=rows * cols, max_size=rows * cols)), dtype=np.uint64).reshape(rows, cols)
    vector = np.array(data.draw(st.lists(elements, min_size=cols, max_size=cols)), dtype=np.uint64)
    expected = [sum(int(a) * int(b) for a, b in zip(row, vector)) % P for row in matrix]
    out = field.dot(matrix, vector)
    assert out.dtype == np.uint64 and out.shape == (rows,) and [int(v) for v in out] == expected
    assert np.array_equal(out, field.sum_last(field.mul(matrix, vector)))  # the vectorized path, whatever the size
    if rows:
        assert int(field.dot(matrix[0], vector)) == expected[0]


@given(st.lists(st.integers(1, P - 1), min_size=1, max_size=20))
def test_inverse(values):
    a = np.array(values, dtype=np.uint64)
    assert np.all(field.mul(field.inv(a), a) == 1)


@settings(max_examples=80, deadline=None)
@given(st.sets(st.integers(1, P - 1), min_size=1, max_size=40))
def test_weights_at_zero_are_the_lagrange_coefficients(points):
    """Both paths of `_coefficients_at_zero` (Python integers up to 32 points, numpy above) give the field's Lagrange
    weights at 0, and they interpolate: sum_i L_i(0) x_i**k is 0**k (1 for k = 0, else 0) for every degree k < t."""
    pts = tuple(sorted(points))
    weights = shamir._coefficients_at_zero(pts)
    assert np.array_equal(weights, field.lagrange_coefficients(np.array(pts, dtype=np.uint64), np.zeros(1, dtype=np.uint64))[0])
    for k in range(len(pts)):
        assert sum(int(w) * pow(x, k, P) for w, x in zip(weights, pts)) % P == (1 if k == 0 else 0)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 30), m=st.integers(1, 4), data=st.data())
def test_both_share_paths_give_the_same_shares(n, m, data):
    """`share` evaluates the polynomial from a Python power table (small tables) or by Horner's rule: the same
    coefficients (same draws) give the same shares, each equal to secret + sum_j c_j x**(j + 1) in Python integers."""
    t = data.draw(st.integers(1, n))
    secrets = np.array(data.draw(st.lists(st.integers(0, P - 1), min_size=m, max_size=m)), dtype=np.uint64)
    xs = sorted(data.draw(st.sets(st.integers(1, 10**6), min_size=n, max_size=n)) | {P - 1})[-n:]
    seed = data.draw(st.integers(0, 2**32))
    table = shamir.share(secrets, xs, t, rng=SeededRandomness(seed))
    limit, shamir._SMALL_POWERS = shamir._SMALL_POWERS, -1  # every table is "large": Horner's rule
    try:
        horner = shamir.share(secrets, xs, t, rng=SeededRandomness(seed))
    finally:
        shamir._SMALL_POWERS = limit
    coeffs = SeededRandomness(seed).uint64((t - 1) * m).reshape(t - 1, m) & np.uint64(P)
    coeffs[coeffs == P] = 0
    expected = [[(int(secrets[e]) + sum(int(coeffs[j, e]) * pow(x, j + 1, P) for j in range(t - 1))) % P for e in range(m)] for x in xs]
    assert np.array_equal(table, horner) and table.tolist() == expected


def test_inverse_of_zero_raises():
    with pytest.raises(ZeroDivisionError):
        field.inv(np.array([3, 0], dtype=np.uint64))


@given(st.binary(min_size=0, max_size=64))
def test_bytes_field_roundtrip(secret):
    assert shamir.field_to_bytes(shamir.bytes_to_field(secret), len(secret)) == secret


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 30), data=st.data())
def test_any_t_shares_reconstruct(n, data):
    t = data.draw(st.integers(1, n))
    secret = data.draw(st.binary(min_size=32, max_size=32))
    points = data.draw(st.lists(st.integers(1, 10**6), min_size=n, max_size=n, unique=True))
    shares = shamir.share(shamir.bytes_to_field(secret), points, t, rng=SeededRandomness(data.draw(st.integers(0, 2**32))))
    subset = sorted(data.draw(st.sets(st.integers(0, n - 1), min_size=t, max_size=n)))
    recovered = shamir.reconstruct([points[i] for i in subset], shares[subset], t)
    assert shamir.field_to_bytes(recovered, 32) == secret


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 20), data=st.data())
def test_a_wrong_share_is_detected_when_redundant(n, data):
    t = data.draw(st.integers(1, n - 1))
    secrets = np.array(data.draw(st.lists(elements, min_size=1, max_size=5)), dtype=np.uint64)
    points = list(range(1, n + 1))
    shares = shamir.share(secrets, points, t, rng=SeededRandomness(1))
    row, col = data.draw(st.integers(0, n - 1)), data.draw(st.integers(0, len(secrets) - 1))
    shares[row, col] = (shares[row, col] + np.uint64(data.draw(st.integers(1, P - 1)))) % np.uint64(P)
    with pytest.raises(InconsistentShares):
        shamir.reconstruct(points, shares, t)


def test_fewer_than_t_shares_are_independent_of_the_secret():
    # t-1 shares at fixed points have the same distribution for any secret: with the same coefficients
    # (same seed), shifting the secret shifts every share by the same constant, and the coefficient
    # stream is uniform, so compare the empirical distribution of one share's low bits for two secrets.
    t, draws = 3, 4000
    lows = []
    for secret in (0, P - 1):
        values = [
            int(shamir.share(np.array([secret], dtype=np.uint64), [1, 2, 3], t, rng=SeededRandomness(seed))[0, 0]) & 0xF
            for seed in range(draws)
        ]
        lows.append(np.bincount(values, minlength=16) / draws)
    assert np.max(np.abs(lows[0] - lows[1])) < 0.03
    assert np.max(np.abs(lows[0] - 1 / 16)) < 0.03


@pytest.mark.parametrize(
    "points, t, message",
    [([1, 1, 2], 2, "distinct"), ([0, 1], 1, "distinct"), ([1, 2], 3, "threshold"), ([1, 2], 0, "threshold")],
)
def test_share_rejects_bad_parameters(points, t, message):
    with pytest.raises(ValueError, match=message):
        shamir.share(np.array([1], dtype=np.uint64), points, t, rng=SeededRandomness(0))


def test_reconstruct_needs_t_shares():
    shares = shamir.share(np.array([5], dtype=np.uint64), [1, 2, 3], 3, rng=SeededRandomness(0))
    with pytest.raises(ValueError, match="at least t=3"):
        shamir.reconstruct([1, 2], shares[:2], 3)
