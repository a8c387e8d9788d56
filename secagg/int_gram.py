"""Exact products A B^T over Z_{2^64} with float64 BLAS: limbs small enough that every sum is exact.

Each entry x of Z_{2^64} is split into balanced limbs

    x = x_0 + 2**22 x_1 + 2**44 x_2 mod 2**64,    x_k in [-2**21, 2**21),

so A B^T = sum_{k + l <= 2} 2**(22 (k + l)) A_k B_l^T mod 2**64 (terms with k + l >= 3 carry 2**66 = 0).
One limb product is at most 2**42 in absolute value, so a dot product over CHUNK = 2048 columns is at most
2**53: every partial sum BLAS forms, in any order, is an integer that float64 holds exactly. Columns are
taken CHUNK at a time; the chunk results are cast to int64 (exact) and summed mod 2**64.

A limb becomes a float64 without a numeric conversion: for 0 <= v < 2**52 the bits 0x4330000000000000 | v
are the float64 2**52 + v, so limb_k = float(bits) - (2**52 + 2**21) (exact).

Cost for A B^T: 6 float64 products (n, CHUNK) x (CHUNK, m) a chunk. For A A^T: one symmetric product of the
stacked [A_0; A_1] (2n rows: A_0 A_0^T, A_0 A_1^T and A_1 A_1^T at once) and one A_2 A_0^T, about 3 products
of (n, CHUNK) x (CHUNK, n), computed as upper triangles by BLAS (syrk). O((n + m) d) to split.
Low level: most callers want `secagg.beaver.gram_share`.
"""

from __future__ import annotations

import numpy as np

LIMB_BITS = 22
LIMBS = 3  # 3 * 22 >= 64
CHUNK = 2 ** (53 - 2 * (LIMB_BITS - 1))  # columns a float64 product sums exactly: CHUNK * (2**21)**2 = 2**53
_MASK = np.uint64((1 << LIMB_BITS) - 1)
_OFFSET = np.uint64(sum(1 << (LIMB_BITS * k + LIMB_BITS - 1) for k in range(LIMBS)) % 2**64)
_TWO52 = np.uint64(0x4330000000000000)  # the float64 bits of 2**52
_BIAS = float(2**52 + 2 ** (LIMB_BITS - 1))


def ring_gram(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """a @ b.T mod 2**64 for uint64 matrices a (n, d) and b (m, d) (b = None: a @ a.T), as uint64 (n, m).

    Raises:
        TypeError: unless a (and b) are uint64 numpy arrays.
        ValueError: unless they are 2-D with the same number of columns.
    """
    _check("a", a)
    if b is not None:
        _check("b", b)
        if b.shape[1] != a.shape[1]:
            raise ValueError(f"a and b need the same number of columns, found a {a.shape} and b {b.shape}")
        return _product(a, b)
    return _symmetric(a)


def _check(name: str, x) -> None:
    if not isinstance(x, np.ndarray) or x.dtype != np.uint64:
        raise TypeError(f"{name} must be a uint64 numpy array, found {type(x).__name__} {getattr(x, 'dtype', '')}")
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows, columns), found shape {x.shape}")


def _limbs(block: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """(LIMBS, n, c) float64 balanced limbs of a uint64 block (n, c): the 22-bit digits of u = x + H mod 2**64,
    minus 2**21 each, with H = 2**21 (1 + 2**22 + 2**44) mod 2**64, so x = sum_k (digit_k - 2**21) 2**(22 k)
    mod 2**64. `out`: a buffer of at least that size to write into (returned as a view of it)."""
    n, c = block.shape
    out = np.empty((LIMBS, n, c)) if out is None else out.reshape(-1)[: LIMBS * n * c].reshape(LIMBS, n, c)
    bits = out.view(np.uint64)
    np.add(block, _OFFSET, out=bits[0])
    for k in range(LIMBS - 1, -1, -1):  # the highest first: bits[0] holds u until the last step
        if k:
            np.right_shift(bits[0], np.uint64(LIMB_BITS * k), out=bits[k])
        if k < LIMBS - 1:
            np.bitwise_and(bits[k], _MASK, out=bits[k])
        np.bitwise_or(bits[k], _TWO52, out=bits[k])
        np.subtract(out[k], _BIAS, out=out[k])
    return out


def _exact(product: np.ndarray) -> np.ndarray:
    """An exact float64 integer product as uint64 (two's complement)."""
    return product.astype(np.int64).view(np.uint64)


def _chunks(d: int):
    return range(0, d, CHUNK)


def _product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """acc[s] = sum_{k + l = s} A_k B_l^T, one stacked product per limb of B; a @ b.T = sum_s 2**(22 s) acc[s]."""
    n, m = a.shape[0], b.shape[0]
    acc = np.zeros((LIMBS, n, m), dtype=np.uint64)
    buf_a, buf_b = np.empty(LIMBS * n * min(CHUNK, a.shape[1])), np.empty(LIMBS * m * min(CHUNK, a.shape[1]))
    for start in _chunks(a.shape[1]):
        la = _limbs(a[:, start : start + CHUNK], buf_a)
        lb = _limbs(b[:, start : start + CHUNK], buf_b)
        for l in range(LIMBS):
            rows = LIMBS - l  # limbs k = 0 .. LIMBS - 1 - l of A meet limb l of B
            acc[l:] += _exact(la[:rows].reshape(rows * n, -1) @ lb[l].T).reshape(rows, n, m)
    return _recombine(acc)


def _symmetric(a: np.ndarray) -> np.ndarray:
    """a @ a.T: with S = [A_0; A_1] [A_0; A_1]^T and T = A_2 A_0^T summed over the chunks,
    a a^T = S_00 + 2**22 (S_01 + S_01^T) + 2**44 (S_11 + T + T^T) mod 2**64."""
    n = a.shape[0]
    s = np.zeros((2 * n, 2 * n), dtype=np.uint64)
    t = np.zeros((n, n), dtype=np.uint64)
    buf = np.empty(LIMBS * n * min(CHUNK, a.shape[1]))
    for start in _chunks(a.shape[1]):
        la = _limbs(a[:, start : start + CHUNK], buf)
        low = la[:2].reshape(2 * n, -1)
        s += _exact(low @ low.T)  # numpy calls syrk for x @ x.T
        t += _exact(la[2] @ la[0].T)
    acc = np.empty((LIMBS, n, n), dtype=np.uint64)
    acc[0] = s[:n, :n]
    acc[1] = s[:n, n:] + s[n:, :n]
    acc[2] = s[n:, n:] + t + t.T
    return _recombine(acc)


def _recombine(acc: np.ndarray) -> np.ndarray:
    out = acc[0].copy()
    for s in range(1, LIMBS):
        out += acc[s] << np.uint64(LIMB_BITS * s)
    return out
