"""Two-party additive sharing in Z_{2^64}, Gram-matrix Beaver triples, and local truncation.

Sharing: x = x0 + x1 mod 2**64 with x0 uniform. The first share can travel as a 32-byte seed that
`AesCtrPrg` expands (domain-separated), halving what a client uploads.

Gram triple (a matrix Beaver triple with B = A^T): a dealer draws A = A_0 + A_1 uniform (n, d) and
C = A A^T - A_0 A_0^T (n, n), and shares C. To get shares of G = X X^T from shares of X, the servers open
E = X - A (uniform, so it reveals nothing about X) and compute locally

    G_0 = C_0 + (E + A_0)(E + A_0)^T,      G_1 = C_1 + E A_1^T + A_1 E^T,

    G_0 + G_1 = E E^T + E A^T + A E^T + A A^T = (E + A)(E + A)^T = X X^T.

Party 0 computes one symmetric product (half the limb products of E A_0^T + A_0 E^T + E E^T), and
E + A_0 = X - A_1 is what it gets by adding its own X_0 to the X_1 - A_1 it receives (`party0_gram_share`).
Party 0's share (A_0, C_0) is expanded from the dealer's seed; party 1's (A_1, C_1 = C - C_0) is uniform
to party 0, which never sees it, and C_1 is uniform to party 1, which never sees the seed.
One triple serves exactly one Gram matrix: reusing A reveals X - X' (see `GramTriple.use`).

Narrow shares (`narrow=True`): the same G_0 + G_1 = X X^T with the off-diagonal entries computed mod 2**44 only
(`secagg.int_gram.narrow_gram`, half the limb products; shares of Z_2^64 reduced mod 2**44 are shares of Z_2^44,
the triple's C too) and the diagonal exactly mod 2**64 (`row_dots`, O(n d)): for callers that need the norms
G_ii exactly and use the off-diagonal only for values they know lie in [0, 2**43), such as distances
G_ii + G_jj - 2 G_ij of inputs whose norms they checked.

Truncation (SecureML, Mohassel and Zhang, S&P 2017, Theorem 1): to divide a shared value x with
|x| < 2**l by 2**k, party 0 takes floor(x0 / 2**k) and party 1 takes -floor(-x1 / 2**k); the result
is floor(x / 2**k) or one more, except with probability at most 2**(l + 1 - 64).
The diagonal alone (the norms ||x_i||^2 in O(n d)) is `secagg.norm_triple`.
Low level: the protocol (who deals, who opens what) is `protocols.two_server`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from secagg.errors import AlreadyUsed
from secagg.int_gram import NARROW_BITS, narrow_gram, ring_gram, row_dots, symmetric_gram
from secagg.prg import AesCtrPrg
from secagg.randomness import Randomness
from secagg.ring import Ring

RING = Ring(64)
GRAM_A, GRAM_C = b"gram A", b"gram C"  # PRG domains of party 0's triple share
_PRG = AesCtrPrg(RING)


def expand_share(seed: bytes, shape: tuple[int, ...], domain: bytes) -> np.ndarray:
    """The uniform share of Z_{2^64} that `seed` stands for, of the given shape."""
    size = int(np.prod(shape))
    return _PRG.expand(seed, size, domain).reshape(shape) if size else np.zeros(shape, dtype=np.uint64)


def expand_rows(seeds: list[bytes], shape: tuple[int, ...], domain: bytes) -> np.ndarray:
    """np.stack([expand_share(s, shape, domain) for s in seeds]), each row written in place (no copy a row)."""
    out = np.zeros((len(seeds), int(np.prod(shape))), dtype=np.uint64)
    for row, seed in zip(out, seeds):
        _PRG.add_into(row, seed, domain)
    return out.reshape((len(seeds),) + tuple(shape))


def share_with_seed(x: np.ndarray, seed: bytes, domain: bytes) -> np.ndarray:
    """x1 = x - PRG(seed) mod 2**64: the explicit share when the other one is `seed`."""
    x = np.ascontiguousarray(x, dtype=np.uint64)
    out = np.empty_like(x)
    if out.size:  # one pass: each block of x copied into out as the keystream is subtracted
        _PRG.add_streams(out.reshape(-1), [(seed, domain, -1)], start=x.reshape(-1))
    return out


def lift_signed(x: np.ndarray, bits: int) -> np.ndarray:
    """Elements of Z_{2^bits} read as signed integers, as elements of Z_{2^64} (sign extension)."""
    x = np.asarray(x).astype(np.uint64)
    if bits == 64:
        return x
    top = np.uint64(1 << (bits - 1))
    return np.where(x >= top, x - top - top, x).astype(np.uint64)


def to_signed(x: np.ndarray) -> np.ndarray:
    """Elements of Z_{2^64} as signed int64 (two's complement)."""
    return np.asarray(x, dtype=np.uint64).view(np.int64)


def truncate(share: np.ndarray, k: int, party: int) -> np.ndarray:
    """Party `party`'s share of x / 2**k (see the module docstring for the +-1 error and failure bound)."""
    s = np.asarray(share, dtype=np.uint64)
    if party == 0:
        return s >> np.uint64(k)
    return (np.uint64(0) - ((np.uint64(0) - s) >> np.uint64(k))).astype(np.uint64)


class OneShot:
    """One party's share of correlated randomness, which may mask one value only: `use()` marks it consumed,
    and a second use raises `AlreadyUsed` with `REUSE`, what a reuse would reveal."""

    REUSE = "correlated randomness must mask one value only"

    def use(self):
        if getattr(self, "_used", False):
            raise AlreadyUsed(self.REUSE)
        self._used = True
        return self


@dataclass
class GramTriple(OneShot):
    """One party's share of a Gram triple: A_p (n, d) and C_p (n, n)."""

    REUSE = "a Gram triple must mask one matrix only: reuse reveals the difference of the inputs"

    a: np.ndarray
    c: np.ndarray


def deal_gram(n: int, d: int, rng: Randomness, seed: bytes) -> tuple[GramTriple, GramTriple]:
    """A dealer's triple: party 0's share comes from `seed` (send it the seed), party 1's explicitly.

    Raises:
        ValueError: for n < 1 or d < 1.
    """
    return deal_products(n, d, rng, seed, triple_from_seed, ring_gram, GramTriple)  # C = A A^T - A_0 A_0^T


def deal_products(n: int, d: int, rng: Randomness, seed: bytes, from_seed, product, kind):
    """A dealt triple of any product (the Gram matrix, its diagonal): party 0's share t0 = `from_seed(seed, n, d)`,
    A = A_0 + A_1 uniform (n, d), C = product(A) - product(A_0) shared as t0.c + C_1; returns (t0, kind(A_1, C_1)).

    Raises:
        ValueError: for n < 1 or d < 1.
    """
    if n < 1 or d < 1:
        raise ValueError(f"need n >= 1 and d >= 1, found n={n}, d={d}")
    t0 = from_seed(seed, n, d)
    a = rng.uint64(n * d).reshape(n, d)
    c = product(a) - product(t0.a)
    return t0, kind(np.subtract(a, t0.a, out=a), np.subtract(c, t0.c, out=c))


def triple_from_seed(seed: bytes, n: int, d: int) -> GramTriple:
    """Party 0's share of a dealt triple, from the dealer's seed."""
    return GramTriple(expand_share(seed, (n, d), GRAM_A), expand_share(seed, (n, n), GRAM_C))


@dataclass
class SeededGramTriple(OneShot):
    """Party 0's share of a dealt Gram triple kept as the dealer's seed, A_0 never stored: `mask(x0)` returns
    X_0 - A_0 (once), `share(p)` returns C_0 + P P^T for P = X - A_1 (`party0_gram_share`)."""

    REUSE = GramTriple.REUSE

    seed: bytes
    n: int
    d: int

    def mask(self, x0: np.ndarray) -> np.ndarray:
        self.use()
        return share_with_seed(x0, self.seed, GRAM_A)

    def share(self, p: np.ndarray, narrow: bool = False, plus: np.ndarray | None = None) -> np.ndarray:
        """C_0 + P P^T for P = p + plus (plus None: P = p), P never stored whole (`narrow`: see the module)."""
        c = expand_share(self.seed, (self.n, self.n), GRAM_C)
        g = symmetric_gram(p, plus, narrow)
        return _narrow(g, c) if narrow else np.add(g, c, out=g)


def gram_share(party: int, e: np.ndarray, triple: GramTriple, narrow: bool = False) -> np.ndarray:
    """Party `party`'s share of X X^T, given the opened E = X - A and its triple share (`narrow`: see the module)."""
    if party == 0:
        return party0_gram_share(e + triple.a, triple, narrow)
    t = triple.use()
    if narrow:  # E A_1^T + A_1 E^T: off the diagonal mod 2**44, on it 2 sum_j e_ij a_ij mod 2**64
        m = narrow_gram(e, t.a)
        m += m.T
        np.fill_diagonal(m, np.uint64(2) * row_dots(e, t.a))
        return _narrow(m, t.c)
    m = ring_gram(e, t.a)  # E A_1^T; A_1 E^T is its transpose
    return t.c + m + m.T


def party0_gram_share(p: np.ndarray, triple: GramTriple, narrow: bool = False) -> np.ndarray:
    """Party 0's share of X X^T from P = E + A_0 = X - A_1 (its X_0 plus the X_1 - A_1 party 1 opens): C_0 + P P^T."""
    t = triple.use()
    return _narrow(symmetric_gram(p, narrow=True), t.c) if narrow else ring_gram(p) + t.c


def _narrow(g: np.ndarray, c: np.ndarray) -> np.ndarray:
    """A narrow share C + g: off the diagonal reduced mod 2**44, on it mod 2**64 (g's diagonal exact)."""
    out = np.bitwise_and(g + c, np.uint64((1 << NARROW_BITS) - 1))
    np.fill_diagonal(out, np.diagonal(g) + np.diagonal(c))
    return out
