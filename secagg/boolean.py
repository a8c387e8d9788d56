"""AND gates on XOR-shared, bit-sliced words with a dealer's AND triples (Beaver's multiplication over Z_2,
64 gates a uint64 word).

A triple is a, b uniform and c = a & b, each XOR-shared between parties 0 and 1. To get shares of
z = x & y from shares of x and y, the parties open e = x ^ a and f = y ^ b (uniform) and compute locally

    z_p = c_p ^ (e & b_p) ^ (f & a_p) ^ [p = 0] (e & f),      z_0 ^ z_1 = (e ^ a) & (f ^ b) = x & y.

Triples come in layers (one layer a round of gates, shape (layers, ...)): party 0's from the dealer's seed,
party 1's explicit (3 bits a gate). A layer serves one set of gates: reuse reveals x ^ x' (see `take`).
Low level: the circuits (adder, comparison, selection) and who opens what are `protocols.two_server`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from secagg.beaver import expand_share
from secagg.errors import AlreadyUsed
from secagg.randomness import Randomness


@dataclass
class AndTriples:
    """One party's XOR shares of AND triples a, b, c (layers, ...) uint64 words."""

    a: np.ndarray
    b: np.ndarray
    c: np.ndarray
    _used: set = field(default_factory=set, repr=False)

    def take(self, layer: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(a, b, c) of one layer; a second take of the same layer raises `AlreadyUsed`."""
        if layer in self._used:
            raise AlreadyUsed(f"AND triple layer {layer} was used: reuse reveals the XOR of two inputs")
        self._used.add(layer)
        return self.a[layer], self.b[layer], self.c[layer]


def and_triples_from_seed(seed: bytes, shape: tuple[int, ...]) -> AndTriples:
    """Party 0's triples of shape (layers, ...), from the dealer's seed."""
    return AndTriples(*(expand_share(seed, shape, domain) for domain in (b"and a", b"and b", b"and c")))


def deal_and_triples(shape: tuple[int, ...], rng: Randomness, seed: bytes) -> tuple[AndTriples, AndTriples]:
    """The dealer's triples (layers, ...): party 0's from `seed`, party 1's explicit."""
    size = int(np.prod(shape))
    a, b = rng.uint64(size).reshape(shape), rng.uint64(size).reshape(shape)
    t0 = and_triples_from_seed(seed, shape)
    return t0, AndTriples(a ^ t0.a, b ^ t0.b, (a & b) ^ t0.c)


def and_masked(x: np.ndarray, y: np.ndarray, triple: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """What a party opens for z = x & y: its shares of (e, f) = (x ^ a, y ^ b), stacked."""
    a, b, _ = triple
    out = np.empty((2,) + np.broadcast_shapes(x.shape, a.shape), dtype=np.uint64)
    np.bitwise_xor(x, a, out=out[0])
    np.bitwise_xor(y, b, out=out[1])
    return out


def and_share(party: int, opened: np.ndarray, triple: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """Party `party`'s share of x & y from the opened (e, f) and its triple."""
    a, b, c = triple
    e, f = opened
    z = np.bitwise_and(e, b)
    z ^= c
    term = np.bitwise_and(f, a)
    z ^= term
    if party == 0:
        z ^= np.bitwise_and(e, f, out=term)
    return z
