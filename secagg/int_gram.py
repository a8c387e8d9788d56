"""Exact products A B^T over Z_{2^64} with float64 BLAS: limbs small enough that every sum is exact.

Each entry x of Z_{2^64} is split into balanced limbs

    x = x_0 + 2**22 x_1 + 2**44 x_2 mod 2**64,    x_k in [-2**21, 2**21),

so A B^T = sum_{k + l <= 2} 2**(22 (k + l)) A_k B_l^T mod 2**64 (terms with k + l >= 3 carry 2**66 = 0).
One limb product is at most 2**42 in absolute value, so a dot product over CHUNK = 2048 columns is at most
2**53: every partial sum BLAS forms, in any order, is an integer that float64 holds exactly. Columns are
taken CHUNK at a time; the chunk results are cast to int64 (exact) and summed mod 2**64.

Cost: 6 float64 products of the operands' size (4 for A A^T, by symmetry) and O((n + m) d) to split.
Low level: most callers want `secagg.beaver.gram_share`.
"""

from __future__ import annotations

import numpy as np

LIMB_BITS = 22
LIMBS = 3  # 3 * 22 >= 64
CHUNK = 2 ** (53 - 2 * (LIMB_BITS - 1))  # columns a float64 product sums exactly: CHUNK * (2**21)**2 = 2**53
_MASK = np.uint64((1 << LIMB_BITS) - 1)
_OFFSET = np.uint64(sum(1 << (LIMB_BITS * k + LIMB_BITS - 1) for k in range(LIMBS)) % 2**64)


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
    n, d = a.shape
    m = n if b is None else b.shape[0]
    acc = np.zeros((LIMBS, n, m), dtype=np.uint64)  # acc[s]: sum of the limb products of weight 2**(22 s)
    for start in range(0, d, CHUNK):
        la = _limbs(a[:, start : start + CHUNK])
        if b is None:
            _add_symmetric(acc, la)
        else:
            _add_products(acc, la, _limbs(b[:, start : start + CHUNK]))
    out = acc[0]
    for s in range(1, LIMBS):
        out += acc[s] << np.uint64(LIMB_BITS * s)
    return out


def _check(name: str, x) -> None:
    if not isinstance(x, np.ndarray) or x.dtype != np.uint64:
        raise TypeError(f"{name} must be a uint64 numpy array, found {type(x).__name__} {getattr(x, 'dtype', '')}")
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows, columns), found shape {x.shape}")


def _limbs(block: np.ndarray) -> np.ndarray:
    """(LIMBS, n, c) float64 balanced limbs of a uint64 block: the 22-bit digits of u = x + H mod 2**64, minus 2**21
    each, with H = 2**21 (1 + 2**22 + 2**44) mod 2**64, so x = sum_k (digit_k - 2**21) 2**(22 k) mod 2**64."""
    u = np.add(block, _OFFSET)  # a contiguous copy of the (possibly strided) block
    digit = np.empty_like(u)
    out = np.empty((LIMBS,) + u.shape, dtype=np.float64)
    for k in range(LIMBS):
        np.right_shift(u, np.uint64(LIMB_BITS * k), out=digit)
        if k < LIMBS - 1:
            np.bitwise_and(digit, _MASK, out=digit)
        np.subtract(digit, float(1 << (LIMB_BITS - 1)), out=out[k])  # converts to float64 and centres in one pass
    return out


def _exact(product: np.ndarray) -> np.ndarray:
    """An exact float64 integer product as uint64 (two's complement)."""
    return product.astype(np.int64).view(np.uint64)


def _add_products(acc: np.ndarray, la: np.ndarray, lb: np.ndarray) -> None:
    """acc[k + l] += A_k B_l^T for k + l < LIMBS: one stacked product per limb of B."""
    n = la.shape[1]
    for l in range(LIMBS):
        rows = LIMBS - l  # limbs k = 0 .. LIMBS - 1 - l of A meet limb l of B
        stacked = _exact(la[:rows].reshape(rows * n, -1) @ lb[l].T).reshape(rows, n, -1)
        acc[l:] += stacked


def _add_symmetric(acc: np.ndarray, la: np.ndarray) -> None:
    """acc[k + l] += A_k A_l^T for k + l < LIMBS, with A_l A_k^T = (A_k A_l^T)^T (LIMBS = 3: 4 products)."""
    n = la.shape[1]
    first = _exact(la.reshape(LIMBS * n, -1) @ la[0].T).reshape(LIMBS, n, n)  # A_k A_0^T for every k
    acc[0] += first[0]
    for k in range(1, LIMBS):
        acc[k] += first[k] + first[k].T
    middle = _exact(la[1] @ la[1].T)  # A_1 A_1^T, weight 2**44
    acc[2] += middle
