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
Narrow products (`narrow_gram`) for values known to be small: A B^T mod 2**44 from two of the same 22-bit limbs,

    x = x_0 + 2**22 x_1 mod 2**44,    A B^T = A_0 B_0^T + 2**22 (A_0 B_1^T + A_1 B_0^T) mod 2**44,

exact over the same CHUNK columns: for A A^T one symmetric product and one A_0 A_1^T, 3 half products against
6 for the Z_2^64 Gram matrix.
`row_dots` gives the diagonal sum_j a_ij b_ij exactly mod 2**64 in O(n d) (numpy's integer multiply-add wraps
mod 2**64), `row_squares` the squared row norms of P = a + b without storing P; `symmetric_gram` multiplies P P^T for P = a + b without storing P, in Z_2^64 or narrow (off the
diagonal mod 2**44, on it mod 2**64).
Low level: most callers want `secagg.beaver.gram_share`.
"""

from __future__ import annotations

import numpy as np

LIMB_BITS = 22
LIMBS = 3  # 3 * 22 >= 64
CHUNK = 2 ** (53 - 2 * (LIMB_BITS - 1))  # columns a float64 product sums exactly: CHUNK * (2**21)**2 = 2**53
ROW_BLOCK = 1 << 16  # columns `row_squares` adds at a time (512 KiB of uint64)
NARROW_BITS = 2 * LIMB_BITS  # the ring of `narrow_gram`: two limbs
_NARROW_MASK = np.uint64((1 << NARROW_BITS) - 1)
_TWO52 = np.uint64(0x4330000000000000)  # the float64 bits of 2**52


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


def _check_like(name: str, x, a: np.ndarray) -> None:
    """None, or a uint64 matrix of a's shape."""
    if x is not None:
        _check(name, x)
        if x.shape != a.shape:
            raise ValueError(f"{name} must have a's shape {a.shape}, found {x.shape}")


def _limbs(block: np.ndarray, out: np.ndarray | None = None, width: int = LIMB_BITS, count: int = LIMBS) -> np.ndarray:
    """(count, n, c) float64 balanced limbs of a uint64 block (n, c): the `width`-bit digits of u = x + H mod 2**64,
    minus 2**(width - 1) each, with H = sum_k 2**(width k + width - 1) mod 2**64, so x = sum_k (digit_k - 2**(width - 1))
    2**(width k) mod 2**(width count) (mod 2**64 when width count >= 64; the top digit then has 64 - width (count - 1)
    bits). `out`: a buffer of at least that size to write into (returned as a view of it)."""
    n, c = block.shape
    out = np.empty((count, n, c)) if out is None else out.reshape(-1)[: count * n * c].reshape(count, n, c)
    bits = out.view(np.uint64)
    mask, bias = np.uint64((1 << width) - 1), float(2**52 + 2 ** (width - 1))
    np.add(block, np.uint64(sum(1 << (width * k + width - 1) for k in range(count)) % 2**64), out=bits[0])
    for k in range(count - 1, -1, -1):  # the highest first: bits[0] holds u until the last step
        if k:
            np.right_shift(bits[0], np.uint64(width * k), out=bits[k])
        if width * (k + 1) < 64:
            np.bitwise_and(bits[k], mask, out=bits[k])
        np.bitwise_or(bits[k], _TWO52, out=bits[k])
        np.subtract(out[k], bias, out=out[k])
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


def symmetric_gram(a: np.ndarray, plus: np.ndarray | None = None, narrow: bool = False) -> np.ndarray:
    """P P^T for P = a + plus mod 2**64 (plus None: P = a), uint64 (n, d), as uint64 (n, n): mod 2**64 as `ring_gram`;
    `narrow`: off the diagonal mod 2**44 (in [0, 2**44)) as `narrow_gram`, on it exactly mod 2**64 as `row_dots`.
    P is formed 2048 columns at a time and never stored whole (a and plus are read once).

    Raises:
        TypeError, ValueError: as `ring_gram` (plus of a's shape).
    """
    _check("a", a)
    _check_like("plus", plus, a)
    return _narrow_symmetric(a, plus) if narrow else _symmetric(a, plus)


def _blocks(a: np.ndarray, plus: np.ndarray | None, step: int):
    """(a + plus)[:, start : start + step] for each start, a block at a time (a view of a when plus is None)."""
    buf = None if plus is None else np.empty((a.shape[0], min(step, a.shape[1])), dtype=np.uint64)
    for start in range(0, a.shape[1], step):
        block = a[:, start : start + step]
        yield block if plus is None else np.add(block, plus[:, start : start + step], out=buf[:, : block.shape[1]])


def _symmetric(a: np.ndarray, plus: np.ndarray | None = None) -> np.ndarray:
    """P @ P.T for P = a + plus: with S = [P_0; P_1] [P_0; P_1]^T and T = P_2 P_0^T summed over the chunks,
    P P^T = S_00 + 2**22 (S_01 + S_01^T) + 2**44 (S_11 + T + T^T) mod 2**64."""
    n = a.shape[0]
    s = np.zeros((2 * n, 2 * n), dtype=np.uint64)
    t = np.zeros((n, n), dtype=np.uint64)
    buf = np.empty(LIMBS * n * min(CHUNK, a.shape[1]))
    for block in _blocks(a, plus, CHUNK):
        la = _limbs(block, buf)
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


def narrow_gram(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """a @ b.T mod 2**NARROW_BITS for uint64 matrices a (n, d) and b (m, d) (b = None: a @ a.T), as uint64 (n, m)
    in [0, 2**44); only the residues of a and b mod 2**44 matter.

    Raises:
        TypeError, ValueError: as `ring_gram`.
    """
    _check("a", a)
    if b is None:
        out = _narrow_symmetric(a)
        np.fill_diagonal(out, np.diagonal(out) & _NARROW_MASK)
        return out
    _check("b", b)
    if b.shape[1] != a.shape[1]:
        raise ValueError(f"a and b need the same number of columns, found a {a.shape} and b {b.shape}")
    n, m = a.shape[0], b.shape[0]
    low, cross = np.zeros((n, m), dtype=np.uint64), np.zeros((n, m), dtype=np.uint64)  # sum A_0 B_0^T, sum A_0 B_1^T + A_1 B_0^T
    width = min(CHUNK, a.shape[1])
    buf_a, buf_b = np.empty(2 * n * width), np.empty(2 * m * width)
    for start in _chunks(a.shape[1]):
        la = _limbs(a[:, start : start + CHUNK], buf_a, LIMB_BITS, 2)
        lb = _limbs(b[:, start : start + CHUNK], buf_b, LIMB_BITS, 2)
        both = _exact(la[0] @ lb.reshape(2 * m, -1).T)  # [A_0 B_0^T | A_0 B_1^T] in one product
        low += both[:, :m]
        cross += both[:, m:] + _exact(la[1] @ lb[0].T)
    return (low + (cross << np.uint64(LIMB_BITS))) & _NARROW_MASK


def _narrow_symmetric(a: np.ndarray, plus: np.ndarray | None = None) -> np.ndarray:
    """P P^T for P = a + plus: off the diagonal P_0 P_0^T + 2**22 (C + C^T) mod 2**44 with C = P_0 P_1^T (one symmetric
    and one plain product a step), on it sum_j P_ij**2 mod 2**64 from the same uint64 blocks."""
    n = a.shape[0]
    low, cross, diagonal = np.zeros((n, n), dtype=np.uint64), np.zeros((n, n), dtype=np.uint64), np.zeros(n, dtype=np.uint64)
    buf = np.empty(2 * n * min(CHUNK, a.shape[1]))
    for block in _blocks(a, plus, CHUNK):
        diagonal += np.einsum("ij,ij->i", block, block)
        la = _limbs(block, buf, LIMB_BITS, 2)
        low += _exact(la[0] @ la[0].T)  # syrk
        cross += _exact(la[0] @ la[1].T)
    out = (low + ((cross + cross.T) << np.uint64(LIMB_BITS))) & _NARROW_MASK
    np.fill_diagonal(out, diagonal)
    return out


def row_dots(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """sum_j a_ij b_ij mod 2**64 (b = None: b = a), the diagonal of a @ b.T, as uint64 (n,), exact in O(n d).

    Raises:
        TypeError, ValueError: as `ring_gram` (b of a's shape).
    """
    _check("a", a)
    _check_like("b", b, a)
    return np.einsum("ij,ij->i", a, a if b is None else b)


def row_squares(a: np.ndarray, plus: np.ndarray | None = None) -> np.ndarray:
    """sum_j P_ij**2 mod 2**64 for P = a + plus (plus None: P = a), the diagonal of P P^T, as uint64 (n,), exact in
    O(n d); P is formed a row and ROW_BLOCK columns at a time (contiguous, in cache) and never stored whole.

    Raises:
        TypeError, ValueError: as `ring_gram` (plus of a's shape).
    """
    _check("a", a)
    _check_like("plus", plus, a)
    if plus is None:
        return row_dots(a)
    out = np.zeros(a.shape[0], dtype=np.uint64)
    buf = np.empty(min(ROW_BLOCK, a.shape[1]), dtype=np.uint64)
    for i in range(a.shape[0]):
        for start in range(0, a.shape[1], ROW_BLOCK):
            p = np.add(a[i, start : start + ROW_BLOCK], plus[i, start : start + ROW_BLOCK], out=buf[: min(ROW_BLOCK, a.shape[1] - start)])
            out[i : i + 1] += np.einsum("j,j->", p, p)  # an array add: wraps mod 2**64 silently
    return out
