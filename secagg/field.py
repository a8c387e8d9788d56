"""Vectorized arithmetic in GF(p), p = 2**61 - 1 (a Mersenne prime), on numpy uint64.

Low level: used by `secagg.shamir`. A product of two 61-bit elements needs 122 bits, so `mul`
splits each factor into 31- and 30-bit halves whose partial products fit in 64 bits, and folds
with 2**61 = 1 (mod p). No Python loop over elements.
"""

from __future__ import annotations

import numpy as np

P = (1 << 61) - 1
_P = np.uint64(P)
_M31 = np.uint64((1 << 31) - 1)
_M30 = np.uint64((1 << 30) - 1)


def _fold(x: np.ndarray) -> np.ndarray:
    """x mod p for x < 2**64 - 2**61 (two folds of 2**61 = 1, then one conditional subtraction)."""
    x = (x & _P) + (x >> np.uint64(61))
    x = (x & _P) + (x >> np.uint64(61))
    return x - (x >= _P).astype(np.uint64) * _P


def asfield(x) -> np.ndarray:
    """Reduces integers (array-like, < 2**64) into [0, p) as uint64."""
    return _fold(np.asarray(x, dtype=np.uint64))


def add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(a + b) mod p, for a, b in [0, p)."""
    s = np.add(a, b, dtype=np.uint64)
    return s - (s >= _P).astype(np.uint64) * _P


def sub(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(a - b) mod p, for a, b in [0, p)."""
    return add(np.asarray(a, dtype=np.uint64), _P - np.asarray(b, dtype=np.uint64))


def mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(a * b) mod p, for a, b in [0, p); broadcasts like numpy.

    a = ah * 2**31 + al, b = bh * 2**31 + bl (ah, bh < 2**30), so
    a*b = ah*bh*2**62 + (ah*bl + al*bh)*2**31 + al*bl, and 2**62 = 2, 2**61 = 1 (mod p).
    """
    a = np.asarray(a, dtype=np.uint64)
    b = np.asarray(b, dtype=np.uint64)
    ah, al = a >> np.uint64(31), a & _M31
    bh, bl = b >> np.uint64(31), b & _M31
    mid = ah * bl + al * bh  # < 2**62
    # mid * 2**31 = (mid >> 30) * 2**61 + (mid & (2**30 - 1)) * 2**31 = (mid >> 30) + (mid & M30) << 31  (mod p)
    hi = (ah * bh) << np.uint64(1)  # ah*bh*2**62 = 2*ah*bh (mod p), < 2**61
    total = _fold(hi + (mid >> np.uint64(30)) + ((mid & _M30) << np.uint64(31)))  # < 2**62 + 2**32
    return _fold(total + _fold(al * bl))


def inv(a: np.ndarray) -> np.ndarray:
    """Elementwise inverse, by Montgomery's batch trick: prefix products, one Fermat inversion
    (a**(p-2) on a Python int), then a backward pass. O(size) multiplications.

    Raises:
        ZeroDivisionError: if an element is 0.
    """
    a = np.asarray(a, dtype=np.uint64)
    values = [int(v) for v in a.ravel()]
    if 0 in values:
        raise ZeroDivisionError("0 has no inverse in GF(p)")
    prefix, acc = [], 1
    for v in values:
        prefix.append(acc)
        acc = acc * v % P
    inverse = pow(acc, P - 2, P)
    out = [0] * len(values)
    for i in range(len(values) - 1, -1, -1):
        out[i] = inverse * prefix[i] % P
        inverse = inverse * values[i] % P
    return np.array(out, dtype=np.uint64).reshape(a.shape)


def sum_last(a: np.ndarray) -> np.ndarray:
    """Sum over the last axis mod p (up to 2**32 terms): 32-bit halves are summed exactly in uint64."""
    a = np.asarray(a, dtype=np.uint64)
    lo = (a & np.uint64(0xFFFFFFFF)).sum(axis=-1, dtype=np.uint64)
    hi = (a >> np.uint64(32)).sum(axis=-1, dtype=np.uint64)
    return add(mul(_fold(hi), np.uint64((1 << 32) % P)), _fold(lo))


def prod_last(a: np.ndarray) -> np.ndarray:
    """Product over the last axis mod p, by pairwise halving (log2 of the length vectorized steps)."""
    a = np.asarray(a, dtype=np.uint64)
    while a.shape[-1] > 1:
        if a.shape[-1] % 2:
            a = np.concatenate([a, np.ones(a.shape[:-1] + (1,), dtype=np.uint64)], axis=-1)
        a = mul(a[..., 0::2], a[..., 1::2])
    return a[..., 0] if a.shape[-1] else np.ones(a.shape[:-1], dtype=np.uint64)


_SMALL_DOT = 4096  # matrix elements up to which `dot` runs on Python ints (numpy's per-call overhead dominates below)


def dot(matrix: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """matrix @ vector mod p (matrix [..., c], vector [c]); the same elements either way: exact Python integers
    for a small matrix (a Shamir secret of a few elements, reconstructed once a client), else vectorized."""
    matrix = np.asarray(matrix, dtype=np.uint64)
    if matrix.size > _SMALL_DOT:
        return sum_last(mul(matrix, vector))
    weights = [int(v) for v in np.asarray(vector, dtype=np.uint64).reshape(-1)]
    rows = matrix.reshape(-1, matrix.shape[-1]).tolist() if matrix.size else [[]] * int(np.prod(matrix.shape[:-1]))
    out = [sum(a * b for a, b in zip(row, weights, strict=True)) % P for row in rows]
    return np.array(out, dtype=np.uint64).reshape(matrix.shape[:-1])


def lagrange_coefficients(xs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """L[j, i] = prod_{m != i} (z_j - x_m) / (x_i - x_m): the weight of f(x_i) in f(z_j), deg f < len(xs).

    `xs` must be distinct and no target may equal an x (callers check). Cost O(t**2 + r*t) field ops.
    """
    xs = asfield(xs)
    zs = asfield(targets)
    diff = sub(xs[:, None], xs[None, :])  # x_i - x_m
    np.fill_diagonal(diff, 1)
    weights = prod_last(diff)
    gaps = sub(zs[:, None], xs[None, :])  # z_j - x_i, nonzero
    return mul(prod_last(gaps)[:, None], inv(mul(gaps, weights[None, :])))
