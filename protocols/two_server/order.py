"""Coordinate-wise order statistics over XOR-shared digits: a sorting network run on shares, one comparator a
pair of inputs and every coordinate at once (bit-sliced, 64 coordinates a word).

Comparator (i, j) with A = row i, B = row j (b offset-binary digits, so unsigned order is signed order):

    g = [A > B]      the carry-out of A + not(B) (A + 2^b - 1 - B >= 2^b iff A > B): b AND rounds (`add_digits`)
    t = g & (A ^ B)  one AND round (b gates a coordinate)
    row i <- A ^ t = min(A, B),   row j <- B ^ t = max(A, B)

The network is odd-even transposition sort (Habermann 1972): m layers, m (m - 1) / 2 comparators, each layer
(b + 1) rounds between the servers and 2 b AND triples a comparator and coordinate from the dealer.
Everything opened is masked by a triple (uniform): the servers learn nothing about the order.
"""

from __future__ import annotations

import numpy as np

from protocols.two_server.channel import S0, Channel
from protocols.two_server.gates import PARTIES, add_digits, and_layer, deal_ands
from secagg.randomness import Randomness

ALL_ONES = np.uint64(2**64 - 1)


def transposition_layers(m: int) -> list[list[tuple[int, int]]]:
    """Odd-even transposition sort on m rows: layer t compares (i, i + 1) for i = t mod 2, t mod 2 + 2, ..."""
    return [[(i, i + 1) for i in range(t % 2, m - 1, 2)] for t in range(m)] if m > 1 else []


def sort_columns(ch: Channel, digits: dict[int, np.ndarray], dealer: Randomness) -> dict[int, np.ndarray]:
    """XOR shares of the digits (m, b, words) with every coordinate's column sorted ascending (row 0 the smallest)."""
    rows = {p: digits[p].copy() for p in digits}
    m, bits, w = rows[S0].shape
    for t, pairs in enumerate(transposition_layers(m)):
        if not pairs:
            continue
        lo, hi = [i for i, _ in pairs], [j for _, j in pairs]
        c = len(pairs)
        compare = deal_ands(ch, (bits, c, w), dealer.fork(f"compare {t}"))
        swap = deal_ands(ch, (1, c, bits, w), dealer.fork(f"swap {t}"))
        a, b, not_b, diff = {}, {}, {}, {}
        for p, idx in PARTIES:
            with ch.timer(p):
                a[p], b[p] = rows[p][lo], rows[p][hi]
                not_b[p] = b[p] ^ ALL_ONES if idx == 0 else b[p]  # not(B): party 0 flips its share
                diff[p] = a[p] ^ b[p]
        _, greater = add_digits(ch, a, not_b, compare)
        spread = {p: np.broadcast_to(greater[p][:, None, :], diff[p].shape) for p in greater}
        t_share = and_layer(ch, spread, diff, swap, 0)
        for p, _ in PARTIES:
            with ch.timer(p):
                rows[p][lo] = a[p] ^ t_share[p]
                rows[p][hi] = b[p] ^ t_share[p]
    return rows


def kept_positions(rule: str, m: int, f: int) -> list[int]:
    """Sorted positions whose values the rule averages: the middle one or two (median), f .. m - f - 1 (trimmed mean)."""
    if rule == "coordinate_median":
        return sorted({(m - 1) // 2, m // 2})
    return list(range(f, m - f))
