"""Second-round review, issue 14: SecAggPlus.for_clients thresholds against an independent scipy tail.

Claim (graph.choose_degree_and_threshold, SecAggPlus docstring): with c the corrupt neighbours no client
exceeds except w.p. 2**-(sigma + grind_bits) (union bound over n clients), for_clients returns t > c
(passive) or t > (k + c)/2 (active), on every path (sparse k, complete-graph fallback), and
degree_and_threshold accepts it.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binom

from protocols.masking.secagg import SecAggPlus


def independent_c(n: int, k: int, gamma: float, sigma: float) -> int:
    """Smallest c with n * P[Bin(k, gamma) >= c + 1] <= 2**-sigma, by scipy (log sf)."""
    if gamma == 0.0:
        return 0
    target = -sigma * math.log(2.0) - math.log(n)
    for c in range(0, k + 1):
        if binom.logsf(c, k, gamma) <= target + 1e-9:
            return c
    return k


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(3, 400),
    dropout=st.sampled_from([0.0, 0.01, 0.05, 0.1, 0.2, 0.3]),
    corrupt=st.sampled_from([0.0, 0.01, 0.05, 0.1, 0.2, 1 / 3]),
    sigma=st.sampled_from([20.0, 40.0, 64.0]),
    grind=st.sampled_from([0.0, 10.0, 43.0]),
    active=st.booleans(),
)
def test_for_clients_threshold_exceeds_independent_corrupt_bound(n, dropout, corrupt, sigma, grind, active):
    if dropout + corrupt >= 1.0:
        return
    try:
        plus = SecAggPlus.for_clients(n, dropout=dropout, corrupt=corrupt, sigma=sigma, grind_bits=grind, active=active)
    except ValueError:
        # a refusal must be justified: even the complete graph gives no t <= n - 1
        k = n - 1
        c = independent_c(n, k, corrupt, sigma + grind)
        t = (k + c) // 2 + 1 if active else c + 1
        assert t > k, f"refused n={n} though complete graph t={t} <= k={k} works"
        return
    k, t = plus.k, plus.t
    c = independent_c(n, k, corrupt, sigma + grind)
    if active:
        assert 2 * t > k + c, f"n={n} k={k} t={t} c={c}: t <= (k + c)/2"
    else:
        assert t > c, f"n={n} k={k} t={t} c={c}"
    assert t <= k
    assert plus.degree_and_threshold(n) == (k, t)


@pytest.mark.parametrize("n", [12, 20, 30, 50])
@pytest.mark.parametrize("active", [False, True])
def test_for_clients_or_complete_fallback_threshold_holds(n, active):
    """The fallback path: for_clients_or_complete returns either a sampled guarantee meeting the scipy c,
    or the deterministic complete graph whose t meets its own stated colluder bound."""
    plus = SecAggPlus.for_clients_or_complete(n, dropout=0.1, active=active)
    k, t = plus.degree_and_threshold(n)
    if plus._sampled:
        c = independent_c(n, k, plus.targets["corrupt"], plus._per_graph_sigma)
    else:
        c = plus.colluder_count(n, k, t)
    assert (2 * t > k + c) if active else (t > c)
