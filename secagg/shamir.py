"""Shamir t-of-n secret sharing over GF(p), p = 2**61 - 1, vectorized over many secrets.

Low level: n, t and the evaluation points are not checked for security. Most callers want
`protocols.masking.secagg.SecAggPlus.for_clients(n)`, which picks them.

Share at point x (1 <= x < p) of secret s is f(x) for f(X) = s + a_1 X + ... + a_{t-1} X**(t-1)
with uniform a_i; any t shares determine s, any t-1 are jointly uniform. A 32-byte secret
(seed or key) is split into 7-byte chunks, 5 field elements (`bytes_to_field`).
"""

from __future__ import annotations

import functools
import secrets as _os_secrets
from collections.abc import Sequence

import numpy as np

from secagg import field
from secagg.errors import InconsistentShares
from secagg.randomness import Randomness

CHUNK_BYTES = 7  # 56 bits < 61: every chunk is a field element
_SMALL_POWERS = 4096  # entries of the power table `share` builds in Python integers (a SecAgg+ client's: (k + 1) * (t - 1))
_SMALL_T = 32  # up to this many points, Python integers beat numpy's vectorized products on tiny arrays


def bytes_to_field(secret: bytes) -> np.ndarray:
    """Splits bytes into little-endian 7-byte chunks, one field element each (the last zero-padded)."""
    padded = secret + bytes(-len(secret) % CHUNK_BYTES)
    chunks = np.frombuffer(padded, dtype=np.uint8).reshape(-1, CHUNK_BYTES)
    words = np.zeros((len(chunks), 8), dtype=np.uint8)
    words[:, :CHUNK_BYTES] = chunks
    return words.view("<u8").reshape(-1).astype(np.uint64)


def field_to_bytes(elements: np.ndarray, length: int) -> bytes:
    """Inverse of `bytes_to_field` for a secret of `length` bytes.

    Raises:
        InconsistentShares: if an element does not fit in 7 bytes or the padding is not zero
            (a reconstruction from bad shares).
    """
    elements = np.asarray(elements, dtype=np.uint64)
    if len(elements) * CHUNK_BYTES < length or np.any(elements >> np.uint64(8 * CHUNK_BYTES)):
        raise InconsistentShares("reconstructed value is not an encoded secret")
    raw = elements.astype("<u8").view(np.uint8).reshape(-1, 8)[:, :CHUNK_BYTES].tobytes()
    if any(raw[length:]):
        raise InconsistentShares("reconstructed value is not an encoded secret")
    return raw[:length]


def _check_points(xs: Sequence[int]) -> np.ndarray:
    points = np.asarray(xs, dtype=np.int64)
    if points.ndim != 1 or np.any(points < 1) or np.any(points >= field.P) or len(set(points.tolist())) != len(points):
        raise ValueError(f"evaluation points must be distinct integers in [1, p), found {list(xs)}")
    return points.astype(np.uint64)


def share(secrets: np.ndarray, xs: Sequence[int], t: int, *, rng: Randomness) -> np.ndarray:
    """Shares each of m field elements t-of-len(xs): returns uint64[len(xs), m], row j the shares at xs[j].

    Cost: (t-1) * len(xs) * m field multiplications, 8 bytes a share element: for a small table of powers
    (len(xs) * (t - 1) <= 4096, a SecAgg+ client's) x_j**1 .. x_j**(t-1) in Python integers and one vectorized
    product-sum, else Horner's rule (t - 1 vectorized steps); the same field elements either way.

    Raises:
        ValueError: unless 1 <= t <= len(xs) and the points are distinct in [1, p), secrets in [0, p).
    """
    points = _check_points(xs)
    values = np.asarray(secrets, dtype=np.uint64)
    if not 1 <= t <= len(points):
        raise ValueError(f"threshold t must be in [1, {len(points)}], found {t}")
    if np.any(values >= field.P):
        raise ValueError("secrets must be field elements in [0, p)")
    coeffs = rng.uint64((t - 1) * len(values)).reshape(t - 1, len(values)) & np.uint64(field.P)
    coeffs[coeffs == field.P] = 0  # 2**61 - 1 maps to 0: bias 2**-61, below anything observable
    if len(points) * (t - 1) <= _SMALL_POWERS:  # f(x) = secret + sum_j c_j x**(j + 1), as sum_j x**(j + 1) c_j
        p, rows = field.P, []
        for x in points.tolist():
            row, power = [], 1
            for _ in range(t - 1):
                power = power * x % p
                row.append(power)
            rows.append(row)
        powers = np.array(rows, dtype=np.uint64).reshape(len(points), 1, t - 1)
        return field.add(field.sum_last(field.mul(powers, coeffs.T[None, :, :])), values[None, :])
    acc = np.zeros((len(points), len(values)), dtype=np.uint64)
    for c in coeffs[::-1]:  # Horner: acc = acc * x + c, highest degree first
        acc = field.add(field.mul(acc, points[:, None]), c[None, :])
    return field.add(field.mul(acc, points[:, None]), values[None, :])


def reconstruct(xs: Sequence[int], shares: np.ndarray, t: int) -> np.ndarray:
    """Recovers the m secrets from r >= t shares (uint64[r, m], row j at xs[j]).

    With r > t, the r - t extra shares are checked against the polynomial through the first t,
    on a random linear combination of the m columns (a wrong share passes with probability <= 1/p).

    Raises:
        ValueError: if r < t, the points are not distinct in [1, p) or shapes disagree.
        InconsistentShares: if the shares do not lie on one polynomial of degree < t.
    """
    points = _check_points(xs)
    shares = np.asarray(shares, dtype=np.uint64)
    if shares.ndim != 2 or shares.shape[0] != len(points):
        raise ValueError(f"shares must have shape ({len(points)}, m), found {shares.shape}")
    if len(points) < t:
        raise ValueError(f"need at least t={t} shares, found {len(points)}")
    if np.any(shares >= field.P):
        raise InconsistentShares("a share is not a field element")
    base, extra = points[:t], points[t:]
    if len(extra):
        rho = np.array([_os_secrets.randbelow(field.P) for _ in range(shares.shape[1])], dtype=np.uint64)
        combined = field.dot(shares, rho)
        predicted = field.dot(field.lagrange_coefficients(base, extra), combined[:t])
        if np.any(predicted != combined[t:]):
            raise InconsistentShares(f"{len(points)} shares do not lie on one polynomial of degree < {t}")
    return field.dot(shares[:t].T, _coefficients_at_zero(tuple(base.tolist())))




@functools.lru_cache(maxsize=4096)
def _coefficients_at_zero(points: tuple[int, ...]) -> np.ndarray:
    """Lagrange weights of f(x_i) in f(0), L_i(0) = prod_{m != i} x_m / (x_m - x_i); cached, since a server reuses a
    few point sets. A SecAgg+ server sees one point set a client (its neighbours), so for small t the weights come
    from exact Python integers (t**2 products and one batched inversion, `field.inv`): the same field elements as
    `field.lagrange_coefficients`, at a fraction of its numpy call overhead."""
    if len(points) > _SMALL_T:
        coeffs = field.lagrange_coefficients(np.array(points, dtype=np.uint64), np.zeros(1, dtype=np.uint64))[0]
    else:
        p = field.P
        total = 1
        for x in points:
            total = total * x % p
        dens = []
        for i, xi in enumerate(points):
            den = xi  # the x_i of the numerator total / x_i, moved into the denominator
            for m, xm in enumerate(points):
                if m != i:
                    den = den * (xm - xi) % p
            dens.append(den)
        coeffs = np.array([total * inverse % p for inverse in field.inv(np.array(dens, dtype=np.uint64)).tolist()], dtype=np.uint64)
    coeffs.setflags(write=False)
    return coeffs
