"""Norm triples: shares of the squared row norms ||x_i||**2 of an additively shared X in Z_{2^64}, in O(n d).

The diagonal of a Gram triple (`secagg.beaver`): a dealer draws A = A_0 + A_1 uniform (n, d) and
c_i = ||a_i||**2 - ||a0_i||**2 (n,), and shares c. From the opened E = X - A the servers compute locally

    g0_i = c0_i + ||e_i + a0_i||**2 = c0_i + ||x_i - a1_i||**2,      g1_i = c1_i + 2 <e_i, a1_i>,

    g0_i + g1_i = ||a_i||**2 - ||a0_i||**2 + ||e_i||**2 + 2 <e_i, a0_i> + ||a0_i||**2 + 2 <e_i, a1_i>
                = ||e_i||**2 + 2 <e_i, a_i> + ||a_i||**2 = ||e_i + a_i||**2 = ||x_i||**2     (mod 2**64).

Party 0 gets E + A_0 = X - A_1 by adding its X_0 to the X_1 - A_1 party 1 opens, as for the Gram triple. Party 0's
share (A_0, c_0) expands from the dealer's seed, in domains of its own (NORMS_A, NORMS_C: a Gram triple's seed never
stands for a norm triple's share); party 1's (A_1, c_1 = c - c_0) is uniform to party 0, which never sees it, and c_1
is uniform to party 1, which never sees the seed. Work: one exact mod-2**64 row-dot pass (`secagg.int_gram`) over
(n, d) for each party and two for the dealer, against the n**2 d of a Gram matrix. One triple masks one X: reusing A
reveals X - X' (`OneShot`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from secagg.beaver import OneShot, deal_products, expand_share, share_with_seed
from secagg.int_gram import row_dots, row_squares
from secagg.randomness import Randomness

NORMS_A, NORMS_C = b"norms A", b"norms c"  # PRG domains of party 0's share


@dataclass
class NormTriple(OneShot):
    """One party's share of a norm triple: A_p (n, d) and c_p (n,)."""

    REUSE = "a norm triple must mask one matrix only: reuse reveals the difference of the inputs"

    a: np.ndarray
    c: np.ndarray


def norms_from_seed(seed: bytes, n: int, d: int) -> NormTriple:
    """Party 0's share of a dealt norm triple, from the dealer's seed."""
    return NormTriple(expand_share(seed, (n, d), NORMS_A), expand_share(seed, (n,), NORMS_C))


def deal_norms(n: int, d: int, rng: Randomness, seed: bytes) -> tuple[NormTriple, NormTriple]:
    """A dealer's norm triple: party 0's share comes from `seed` (send it the seed), party 1's explicitly. O(n d).

    Raises:
        ValueError: for n < 1 or d < 1.
    """
    return deal_products(n, d, rng, seed, norms_from_seed, row_dots, NormTriple)  # c_1 = ||a_i||^2 - ||a0_i||^2 - c0_i


@dataclass
class SeededNormTriple(OneShot):
    """Party 0's share of a dealt norm triple kept as the dealer's seed, A_0 never stored: `mask(x0)` returns
    X_0 - A_0 (once), `share(p, plus)` returns c_0 + ||P_i||**2 for P = p + plus = X - A_1."""

    REUSE = NormTriple.REUSE

    seed: bytes
    n: int
    d: int

    def mask(self, x0: np.ndarray) -> np.ndarray:
        self.use()
        return share_with_seed(x0, self.seed, NORMS_A)

    def share(self, p: np.ndarray, plus: np.ndarray | None = None) -> np.ndarray:
        """c_0 + ||P_i||**2 mod 2**64 for P = p + plus (plus None: P = p), P never stored whole."""
        squares = row_squares(p, plus)
        return np.add(squares, expand_share(self.seed, (self.n,), NORMS_C), out=squares)


def norm_share(party: int, e: np.ndarray, triple: NormTriple) -> np.ndarray:
    """Party `party`'s share of (||x_i||**2)_i mod 2**64, given the opened E = X - A and its triple share (used once).

    Raises:
        ValueError: if `party` is not 0 or 1.
    """
    if party not in (0, 1):
        raise ValueError(f"party must be 0 or 1, found {party!r}")
    t = triple.use()
    if party == 0:
        return t.c + row_squares(e, t.a)  # ||e_i + a0_i||^2
    return t.c + np.uint64(2) * row_dots(e, t.a)
