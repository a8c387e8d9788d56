"""Communication graphs and the SecAgg+ parameter choice (Bell et al., CCS 2020).

SecAgg+ replaces the complete graph of SecAgg by a random k-regular graph: a Harary graph H(k, n)
(node j adjacent to j +- 1..k/2 mod n) whose node labels are a uniform permutation drawn by the
server. Clients share secrets and masks only with their k neighbours.
"""

from __future__ import annotations

import math

import numpy as np

from secagg.randomness import Randomness


def harary_neighbours(n: int, k: int, rng: Randomness | None) -> list[frozenset[int]]:
    """Neighbour sets of H(k, n) under a random relabelling (k even, 2 <= k < n), or of the complete
    graph when k == n - 1. `rng` draws the relabelling (None keeps the identity labelling).
    SecAgg+ draws it from a public graph seed, so that every party (and a test) can rebuild it."""
    if k == n - 1:
        return [frozenset(range(n)) - {i} for i in range(n)]
    if k % 2 or not 2 <= k < n:
        raise ValueError(f"k must be even with 2 <= k < n = {n}, or n - 1; found {k}")
    perm = rng.permutation(n) if rng is not None else np.arange(n)
    out: list[set[int]] = [set() for _ in range(n)]
    for j in range(n):
        for step in range(1, k // 2 + 1):
            a, b = int(perm[j]), int(perm[(j + step) % n])
            out[a].add(b)
            out[b].add(a)
    return [frozenset(s) for s in out]


def binomial_tail(k: int, p: float, m: int) -> float:
    """P[Binomial(k, p) >= m], summed in log space."""
    if m <= 0:
        return 1.0
    if m > k or p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    logs = [
        math.lgamma(k + 1) - math.lgamma(j + 1) - math.lgamma(k - j + 1) + j * math.log(p) + (k - j) * math.log1p(-p)
        for j in range(m, k + 1)
    ]
    top = max(logs)
    return math.exp(top) * sum(math.exp(v - top) for v in logs)


def choose_degree_and_threshold(
    n: int, dropout: float, corrupt: float, sigma: float, eta: float, *, active: bool = False
) -> tuple[int, int]:
    """Smallest even k (and its smallest t) meeting three conditions, each union-bounded over the n clients.

    Following the structure of Bell et al.'s analysis, with neighbours dropping (fraction delta) or
    corrupt (fraction gamma) independently:
      * security of shares: n * P[Bin(k, gamma) >= t] <= 2**-sigma (corrupt neighbours never hold t
        shares); against an active server also t > k/2 (no two disjoint t-sets of neighbours, so the
        server cannot collect both secrets of one client by lying about who dropped);
      * connectivity: cutting H(k, n) takes two disjoint runs of k/2 consecutive bad nodes, so
        n**2 * (gamma + delta)**k <= 2**-sigma (the server learns no partial sum of a component);
      * correctness: n * P[Bin(k, delta) > k - t] <= 2**-eta (every client keeps t live neighbours).
    When no k < n - 1 works, returns the complete graph (k = n - 1, SecAgg) with t = (n - 1) // 2 + 1,
    whose guarantees are then the deterministic ones: n - t - 1 dropouts, t - 1 colluding clients.

    Raises:
        ValueError: if the fractions are outside [0, 1) or n < 3.
    """
    if not (0.0 <= dropout < 1.0 and 0.0 <= corrupt < 1.0 and dropout + corrupt < 1.0):
        raise ValueError(f"need 0 <= dropout, corrupt and dropout + corrupt < 1; found {dropout}, {corrupt}")
    if n < 3:
        raise ValueError(f"secure aggregation needs n >= 3 clients, found {n}")
    bad = 2.0**-sigma
    for k in range(2, n - 1, 2):
        t = k // 2 + 1 if active else 1
        while t <= k and n * binomial_tail(k, corrupt, t) > bad:
            t += 1
        connected = n * n * (dropout + corrupt) ** k <= bad
        correct = n * binomial_tail(k, dropout, k - t + 1) <= 2.0**-eta
        if t <= k and connected and correct:
            return k, t
    return n - 1, (n - 1) // 2 + 1
