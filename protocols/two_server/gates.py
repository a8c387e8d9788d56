"""Boolean circuits between S0 and S1 on XOR-shared bit-sliced words: opening, AND layers (dealer triples),
ripple-carry addition, and the conversion of digits to additive shares with edaBits (`secagg.edabits`)."""

from __future__ import annotations

import numpy as np

from protocols.core.messages import Kind
from protocols.two_server.channel import S0, S1, Channel
from secagg.boolean import AndTriples, and_masked, and_share, and_triples_from_seed
from secagg.dabits import DaBits, dabits_from_seed, recompose
from secagg.edabits import EdaBits, edabits_from_seed, from_sum
from secagg.prg import derive
from secagg.randomness import Randomness

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
    x, y = ({p: np.empty_like(carry[p]) for p in u} for _ in range(2))  # the gate inputs, rewritten each digit
    for k in range(bits):
        for p, _ in PARTIES:
            with ch.timer(p):
                uk, rk = u[p][..., k, :], r[p][..., k, :]
                np.bitwise_xor(uk, carry[p], out=x[p])
                np.bitwise_xor(rk, carry[p], out=y[p])
                np.bitwise_xor(x[p], rk, out=sums[p][..., k, :])
        z = and_layer(ch, x, y, triples, k)
        for p, _ in PARTIES:
            with ch.timer(p):
                carry[p] ^= z[p]
    return sums, carry


def deal_ands(ch: Channel, shape: tuple[int, ...], dealer: Randomness) -> dict[int, AndTriples]:
    """AND triples of `shape` (layers, ..., words) from the dealer, at both servers."""
    ch.dealt["and_triples"] += 64 * int(np.prod(shape))
    s0, got = ch.deal("and", tuple(int(v) for v in shape), dealer)
    with ch.timer(S0):
        t0 = and_triples_from_seed(s0, shape)
    return {S0: t0, S1: AndTriples(*(a.reshape(shape) for a in got))}


def digits_to_shares(ch: Channel, digits: dict[int, np.ndarray], d: int, dealer: Randomness, each=None) -> dict[int, np.ndarray]:
    """Additive shares (m, d) in Z_{2^64} of the values whose XOR-shared digits (m, bits, words(d)) the servers hold:
    add an edaBit's r with the ripple-carry circuit, open the sum bits c, convert the carry-out t with a daBit,
    then [u]_p = [p = 1] c - [r]_p + 2^b [t]_p (S1 adds the public c: S0 never unpacks it). Opens only uniform values (e, f of the gates, c, t ^ daBit).
    `each(party, i, row)`: called with each client's share row instead (one reused buffer, timed as the party's; returns None)."""
    m, bits, w = digits[S0].shape
    ch.dealt.update(dabits=m * d, edabits=m * d, and_triples=64 * bits * m * w)
    s0, got = ch.deal("digits", (m, bits, w, d), dealer)
    with ch.timer(S0):
        ed = {S0: edabits_from_seed(derive(s0, b"edabits"), (m,), bits, d)}
        dab = {S0: dabits_from_seed(derive(s0, b"dabits"), (m, 1), d)}
        ands = {S0: and_triples_from_seed(derive(s0, b"and triples"), (bits, m, w))}
    with ch.timer(S1):
        ed[S1] = EdaBits(got[0].reshape(m, bits, w), got[1])
        dab[S1] = DaBits(got[2].reshape(m, 1, w), got[3].reshape(m, 1, d))
        ands[S1] = AndTriples(*(a.reshape(bits, m, w) for a in got[4:]))
    sums, carry = add_digits(ch, digits, {q: ed[q].planes for q in ed}, ands)
    opened_sum = open_xor(ch, sums)
    opened_carry = open_xor(ch, {q: carry[q][:, None, :] ^ dab[q].planes for q in carry})
    out = {}
    for q, idx in PARTIES:
        with ch.timer(q):  # a client at a time, in place in its row (or in one buffer for `each`)
            rows = np.empty((m, d) if each is None else (1, d), dtype=np.uint64)
            for i in range(m):
                row = rows[i if each is None else 0]
                recompose(idx, opened_carry[i], DaBits(dab[q].planes[i], dab[q].arith[i]), d, out=row)
                from_sum(idx, opened_sum[i], row, EdaBits(ed[q].planes[i], ed[q].arith[i]), d, out=row)
                if each is not None:
                    each(q, i, row)
            out[q] = rows if each is None else None
    return out
