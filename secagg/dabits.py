"""daBits (Rotaru and Wood, "MArBled Circuits", INDOCRYPT 2019): a random bit r shared twice, r = r0 ^ r1
in Z_2 and r = [r]_0 + [r]_1 in Z_{2^64}, from a dealer, to turn XOR-shared bits into additive shares.

Conversion of an XOR-shared bit v = v0 ^ v1: the parties open c = v ^ r (uniform: it reveals nothing
about v), and since v = c ^ r = c + r - 2 c r,

    [v]_p = [p = 1] c + (1 - 2c) [r]_p      (the public c added by party 1).

Recomposition of b XOR-shared digits (bit-sliced planes, `secagg.bit_sharing`) is then linear:
[sum_k 2^k v_k]_p = [p = 1] sum_k 2^k c_k + sum_k 2^k (1 - 2 c_k) [r_k]_p. One daBit serves one digit:
reusing r reveals v ^ v' (see `DaBits.use`). Party 0's parts come from the dealer's seed; party 1's
travel explicitly (bits / 8 + 8 bits bytes a coordinate).
Low level: the protocol is `protocols.two_server`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from secagg.beaver import OneShot, expand_share
from secagg.bit_sharing import expand_planes, unpack, words
from secagg.randomness import Randomness


@dataclass
class DaBits(OneShot):
    """One party's shares of daBits for (..., bits, d) digits: `planes` (..., bits, words(d)) in Z_2,
    `arith` (..., bits, d) in Z_{2^64}."""

    REUSE = "daBits must mask one set of digits only: reuse reveals their XOR"

    planes: np.ndarray
    arith: np.ndarray


def dabits_from_seed(seed: bytes, shape: tuple[int, ...], d: int) -> DaBits:
    """Party 0's daBits for digits of shape (..., bits, d), from the dealer's seed."""
    return DaBits(expand_planes(seed, shape + (words(d),), b"dabit planes"), expand_share(seed, shape + (d,), b"dabit arith"))


def deal_dabits(shape: tuple[int, ...], d: int, rng: Randomness, seed: bytes) -> tuple[DaBits, DaBits]:
    """The dealer's daBits for digits (..., bits, d): party 0's from `seed`, party 1's explicit.

    Raises:
        ValueError: for d < 1.
    """
    if d < 1:
        raise ValueError(f"need d >= 1, found d={d}")
    r = rng.uint64(int(np.prod(shape)) * words(d)).reshape(shape + (words(d),))
    t0 = dabits_from_seed(seed, shape, d)
    bits = unpack(r, d).astype(np.uint64)
    return t0, DaBits(r ^ t0.planes, bits - t0.arith)


def recompose(party: int, opened: np.ndarray, dabits: DaBits, d: int, out: np.ndarray | None = None) -> np.ndarray:
    """Party `party`'s additive share (..., d) of sum_k 2^k v_k, given the opened c = v ^ r (packed planes);
    written into `out` when given (no temporary for the first digit)."""
    t = dabits.use()
    c = unpack(opened, d)
    acc = np.empty(t.arith.shape[:-2] + (d,), dtype=np.uint64) if out is None else out
    term = acc
    for k in range(c.shape[-2]):
        if k == 1:
            term = np.empty_like(acc)
        ck = c[..., k, :]
        # [v]_p = [p = 1] c + (1 - 2c) [r]_p, with -r = (r ^ ~0) + 1: term = (r ^ -c) + (1 + [p = 1]) c
        np.copyto(term, np.negative(ck.view(np.int8)), casting="unsafe")  # 0 or ~0
        np.bitwise_xor(term, t.arith[..., k, :], out=term)
        term += ck << np.uint8(party == 1)
        if k:
            term <<= np.uint64(k)
            acc += term
    return acc
