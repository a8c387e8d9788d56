"""edaBits (Escudero, Ghosh, Keller, Rachuri and Scholl, CRYPTO 2020): a random r in [0, 2^b) whose b bits
are XOR-shared (bit-sliced planes, `secagg.bit_sharing`) and whose value is additively shared in Z_{2^64}.

Conversion of XOR-shared digits u (b of them, u < 2^b) to an additive share of u: the parties add u + r with
a ripple-carry circuit on the XOR shares (`secagg.boolean`, one AND a digit), open the sum bits
c = (u + r) mod 2^b (uniform) and convert the carry-out t with a daBit (`secagg.dabits`); then

    u = c - r + 2^b t,      [u]_p = [p = 1] c - [r]_p + 2^b [t]_p

(the public c is added by party 1, so that party 0, the costlier server, never unpacks it).

Party 0's parts come from the dealer's seed; party 1's travel explicitly (b / 8 + 8 bytes a value).
One edaBit serves one value (see `EdaBits.use`). Low level: the protocol is `protocols.two_server`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from secagg.beaver import OneShot, expand_share
from secagg.bit_sharing import expand_planes, from_planes, words
from secagg.randomness import Randomness


@dataclass
class EdaBits(OneShot):
    """One party's shares of edaBits for values (..., d) of b bits: `planes` (..., b, words(d)), `arith` (..., d)."""

    REUSE = "edaBits must mask one set of values only: reuse reveals their difference"

    planes: np.ndarray
    arith: np.ndarray


def edabits_from_seed(seed: bytes, shape: tuple[int, ...], bits: int, d: int) -> EdaBits:
    """Party 0's edaBits for values of shape (..., d), from the dealer's seed."""
    return EdaBits(expand_planes(seed, shape + (bits, words(d)), b"edabit planes"), expand_share(seed, shape + (d,), b"edabit arith"))


def deal_edabits(shape: tuple[int, ...], bits: int, d: int, rng: Randomness, seed: bytes) -> tuple[EdaBits, EdaBits]:
    """The dealer's edaBits: party 0's from `seed`, party 1's explicit.

    Raises:
        ValueError: unless 1 <= bits <= 63 and d >= 1.
    """
    if not 1 <= bits <= 63 or d < 1:
        raise ValueError(f"need 1 <= bits <= 63 and d >= 1, found bits={bits}, d={d}")
    r = rng.uint64(int(np.prod(shape)) * bits * words(d)).reshape(shape + (bits, words(d)))
    t0 = edabits_from_seed(seed, shape, bits, d)
    return t0, EdaBits(r ^ t0.planes, from_planes(r, d) - t0.arith)


def from_sum(party: int, opened_sum: np.ndarray, carry: np.ndarray, edabits: EdaBits, d: int, out: np.ndarray | None = None) -> np.ndarray:
    """Party `party`'s additive share (..., d) of u, from the opened sum bits c (planes), its share of the
    carry-out t (additive, (..., d)) and its edaBits: [p = 1] c - [r]_p + 2^b [t]_p; written into `out`
    when given (which may be `carry`)."""
    t = edabits.use()
    out = np.left_shift(carry, np.uint64(t.planes.shape[-2]), out=out)
    out -= t.arith
    if party == 1:
        out += from_planes(opened_sum, d)
    return out
