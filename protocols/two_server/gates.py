"""Boolean circuits between S0 and S1 on XOR-shared bit-sliced words: opening, AND layers (dealer triples),
and the ripple-carry addition that converts digits to additive shares with edaBits."""

from __future__ import annotations

import numpy as np

from protocols.masking_messages import Kind
from protocols.two_server.channel import S0, S1, Channel
from secagg.boolean import AndTriples, and_masked, and_share

PARTIES = ((S0, 0), (S1, 1))


def open_xor(ch: Channel, shares: dict[int, np.ndarray]) -> np.ndarray:
    """Both servers open XOR shares of any shape (uint64 words); returns the value."""
    shape = shares[S0].shape
    flat = {p: s.reshape(-1, shape[-1]) for p, s in shares.items()}
    return ch.exchange(Kind.MATRIX, flat, flat[S0].shape, np.bitwise_xor).reshape(shape)


def and_layer(ch: Channel, x: dict[int, np.ndarray], y: dict[int, np.ndarray], triples: dict[int, AndTriples], layer: int) -> dict[int, np.ndarray]:
    """XOR shares of x & y (one round: open e = x ^ a, f = y ^ b)."""
    t, masked = {}, {}
    for p, _ in PARTIES:
        with ch.timer(p):
            t[p] = triples[p].take(layer)
            masked[p] = and_masked(x[p], y[p], t[p])
    opened = open_xor(ch, masked)
    out = {}
    for p, idx in PARTIES:
        with ch.timer(p):
            out[p] = and_share(idx, opened, t[p])
    return out


def add_digits(ch: Channel, u: dict[int, np.ndarray], r: dict[int, np.ndarray], triples: dict[int, AndTriples]) -> tuple[dict, dict]:
    """Ripple-carry u + r on XOR-shared digit planes (..., b, words): returns the shares of the sum digits
    (mod 2^b) and of the carry-out (..., words). carry_(k+1) = carry_k ^ ((u_k ^ carry_k) & (r_k ^ carry_k)),
    one AND layer a digit (triples (b, ..., words))."""
    bits = u[S0].shape[-2]
    carry = {p: np.zeros(u[p].shape[:-2] + u[p].shape[-1:], dtype=np.uint64) for p in u}
    sums = {p: np.empty_like(u[p]) for p in u}
    for k in range(bits):
        x, y = {}, {}
        for p, _ in PARTIES:
            with ch.timer(p):
                uk, rk = u[p][..., k, :], r[p][..., k, :]
                sums[p][..., k, :] = uk ^ rk ^ carry[p]
                x[p], y[p] = uk ^ carry[p], rk ^ carry[p]
        z = and_layer(ch, x, y, triples, k)
        for p, _ in PARTIES:
            with ch.timer(p):
                carry[p] = carry[p] ^ z[p]
    return sums, carry
