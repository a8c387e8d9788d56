"""Robust reconstruction of a masking secret from Shamir shares, some of which may be bad.

A secret (a self-mask seed or a mask key) comes with a check that a wrong value fails except with
negligible probability (its SHA-256 commitment, or its X25519 public key). The public-key check passes any
key equivalent to the client's: X25519 clamps bits 0-2 of byte 0 (and the top bit), so bad shares that move
only those bits reconstruct other bytes of the same scalar, hence the same public key and pairwise masks (the
sum stays right), and their holders may go unnamed in step 1. A share with an element
>= p = 2**61 - 1 is no element of GF(p): it is dropped first and its holder named. With the m >= t
remaining shares:

1. the first t shares (no suspect among them when possible): one interpolation, the honest case;
2. Gao's decoder on all m (each field element of the secret is a Reed-Solomon codeword of length m
   and dimension t): corrects up to floor((m - t) / 2) bad shares in O(m**2) field operations;
3. t-subsets that leave out 1, 2, ... of the shares (suspects first), at most SEARCH_LIMIT of them:
   finds a good subset whenever there are t good shares and at most m - t bad ones, if it does so
   within the limit (it always does when C(m, m - t) <= SEARCH_LIMIT, e.g. one spare share).

Attribution is by unique decoding: the holders off the recovered polynomial are named only when it
agrees with at least (m + t) / 2 of the m shares (steps 2 and 3; step 1 names nobody). Two polynomials
of degree < t that each agree with (m + t) / 2 shares agree on t points, so are equal: with at most
(m - t) / 2 bad shares exactly their holders are named, and Byzantine holders cannot get honest ones
named (a wrong polynomial through the right secret, which passes the check, agrees with fewer). With
more bad shares, honest holders may be named. The secret is None only when every step failed: fewer
than t good shares, or more than (m - t) / 2 bad ones with C(m, t) above the search limit.

"Named" here is the holder of the share; a bad share in the field may also be its dealer's doing (it seals each holder
its share, and the holder cannot check it), so `MaskingServer` reports those as the pair dealer -> holder and only an
out-of-field share (which an honest holder refuses at receipt) as its holder's.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from itertools import combinations

import numpy as np

from protocols.masking.messages import SECRET_BYTES
from secagg import field, shamir
from secagg.errors import InconsistentShares

SEARCH_LIMIT = 4096  # t-subsets tried in step 3, each one interpolation and one check

P = field.P


def robust_reconstruct(
    holders: Sequence[int], shares: np.ndarray, t: int, check: Callable[[bytes], bool], *, suspects: Collection[int] = ()
) -> tuple[bytes | None, list[int]]:
    """The secret shared at points holder + 1 (shares: uint64[m, elements]) that passes `check`, and
    the holders named as bad (out-of-range shares, and those off a uniquely decoded polynomial; empty
    on the honest path); (None, holders of out-of-range shares) on failure."""
    in_range = np.all(shares < P, axis=1)
    outside = [w for w, ok in zip(holders, in_range) if not ok]
    holders, shares = [w for w, ok in zip(holders, in_range) if ok], shares[in_range]
    m = len(holders)
    if m < t:
        return None, outside
    points = [w + 1 for w in holders]
    order = [j for j in range(m) if holders[j] not in suspects] + [j for j in range(m) if holders[j] in suspects]
    first = tuple(sorted(order[:t]))
    secret = _interpolate(points, shares, first, t)
    if secret is not None and check(secret):
        return secret, outside
    decoded = _gao(points, shares, t)
    if decoded is not None and check(decoded[0]):
        return decoded[0], sorted(outside + _attributed(holders, decoded[1], t))
    for subset in _subsets(order, t):
        secret = _interpolate(points, shares, subset, t)
        if secret is not None and check(secret):
            return secret, sorted(outside + _attributed(holders, _off_polynomial(points, shares, subset), t))
    return None, outside


def _attributed(holders: list[int], off: list[int], t: int) -> list[int]:
    """The holders of the shares `off` the recovered polynomial, if it agrees with at least (m + t) / 2
    of the m shares (then it is the only polynomial that close: unique decoding); else nobody."""
    m = len(holders)
    return [holders[j] for j in off] if 2 * (m - len(off)) >= m + t else []


def _interpolate(points: list[int], shares: np.ndarray, subset: tuple[int, ...], t: int) -> bytes | None:
    try:
        return shamir.field_to_bytes(shamir.reconstruct([points[j] for j in subset], shares[list(subset)], t), SECRET_BYTES)
    except InconsistentShares:
        return None


def _subsets(order: list[int], t: int) -> Iterator[tuple[int, ...]]:
    """Distinct t-subsets, leaving out 1, 2, ... shares, earliest in `order` kept first; at most SEARCH_LIMIT."""
    seen: set[tuple[int, ...]] = set()
    for dropped in range(1, len(order) - t + 1):
        for left_out in combinations(order, dropped):
            subset = tuple(sorted([j for j in order if j not in left_out][:t]))
            if subset in seen:
                continue
            seen.add(subset)
            yield subset
            if len(seen) >= SEARCH_LIMIT:
                return


def _off_polynomial(points: list[int], shares: np.ndarray, subset: tuple[int, ...]) -> list[int]:
    """Indices of the shares that differ from the polynomial through `subset`."""
    others = [j for j in range(len(points)) if j not in subset]
    if not others:
        return []
    weights = field.lagrange_coefficients(np.array([points[j] for j in subset], dtype=np.uint64), np.array([points[j] for j in others], dtype=np.uint64))
    base = shares[list(subset)]
    predicted = np.stack([field.dot(weights, base[:, c]) for c in range(shares.shape[1])], axis=1)
    return [j for j, row in zip(others, predicted) if not np.array_equal(row, shares[j])]


def _gao(points: list[int], shares: np.ndarray, t: int) -> tuple[bytes, list[int]] | None:
    """Gao's Reed-Solomon decoder, column by column: (secret, indices of bad shares), or None."""
    m = len(points)
    if m < t + 2:
        return None
    g0 = [1]
    for x in points:
        g0 = _mul(g0, [P - x, 1])
    elements, bad = [], set()
    for column in shares.T.tolist():
        f = _gao_column(points, column, t, g0)
        if f is None:
            return None
        elements.append(f[0] if f else 0)
        bad |= {j for j, (x, y) in enumerate(zip(points, column)) if _eval(f, x) != y}
    try:
        return shamir.field_to_bytes(np.array(elements, dtype=np.uint64), SECRET_BYTES), sorted(bad)
    except InconsistentShares:
        return None


def _gao_column(points: list[int], ys: list[int], t: int, g0: list[int]) -> list[int] | None:
    """f of degree < t with f(x_i) = y_i for all but at most (m - t) / 2 of the i, or None."""
    m = len(points)
    g1 = [0]
    for x, y in zip(points, ys):
        basis, _ = _divmod(g0, [P - x, 1])  # prod_{j != i} (X - x_j)
        scale = y * pow(_eval(basis, x), P - 2, P) % P
        g1 = _add(g1, [c * scale % P for c in basis])
    r0, r1, v0, v1 = g0, g1, [0], [1]
    while len(_trim(r1)) - 1 >= (m + t) / 2:
        q, r = _divmod(r0, r1)
        r0, r1, v0, v1 = r1, r, v1, _add(v0, [(P - c) % P for c in _mul(q, v1)])
    f, rest = _divmod(r1, v1)
    if any(rest) or len(_trim(f)) > t:
        return None
    return _trim(f)


def _trim(a: list[int]) -> list[int]:
    while a and a[-1] == 0:
        a = a[:-1]
    return a


def _add(a: list[int], b: list[int]) -> list[int]:
    out = [0] * max(len(a), len(b))
    for i, c in enumerate(a):
        out[i] = c
    for i, c in enumerate(b):
        out[i] = (out[i] + c) % P
    return _trim(out)


def _mul(a: list[int], b: list[int]) -> list[int]:
    if not a or not b:
        return []
    out = [0] * (len(a) + len(b) - 1)
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            out[i + j] = (out[i + j] + x * y) % P
    return _trim(out)


def _divmod(a: list[int], b: list[int]) -> tuple[list[int], list[int]]:
    a, b = _trim(list(a)), _trim(list(b))
    if not b:
        raise ZeroDivisionError("polynomial division by zero")
    lead = pow(b[-1], P - 2, P)
    q = [0] * max(len(a) - len(b) + 1, 0)
    while len(a) >= len(b):
        c = a[-1] * lead % P
        shift = len(a) - len(b)
        q[shift] = c
        for i, y in enumerate(b):
            a[shift + i] = (a[shift + i] - c * y) % P
        a = _trim(a)
    return _trim(q), a


def _eval(f: list[int], x: int) -> int:
    acc = 0
    for c in reversed(f):
        acc = (acc * x + c) % P
    return acc
