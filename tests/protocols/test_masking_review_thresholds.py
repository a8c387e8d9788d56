"""Review attacks on the active-mode thresholds (protocols.masking.graph, SecAggPlus.for_clients, SecAgg).

Claims attacked: SecAggPlus docstring "with a fraction gamma = corrupt of clients colluding with the
server, no client has more than c = corrupt_neighbours_bound(n, k, gamma, sigma) corrupt neighbours
except with probability 2**-sigma, and t > c (honest-but-curious server) or t > (k + c) / 2 (active
server) is enforced"; README "SecAggPlus.for_clients(n, corrupt=gamma, active=True) takes c as the
corrupt-neighbour count no client exceeds except with probability 2^-sigma (n = 100, gamma = 5%:
k = 98, t = 64, c = 28; passive: k = 40, t = 19, c = 18)". Tails recomputed here with scipy.stats.
"""

import math

import numpy as np
import pytest
from scipy.stats import binom, hypergeom

from protocols import SecAgg, SecAggPlus
from protocols.masking.graph import corrupt_neighbours_bound
from protocols.masking.setup import RoundSetup
from protocols.testing import equivocation_attack
from secagg import Ring

SIGMA = 40


def _exact_bound(n: int, k: int, gamma: float, sigma: float = SIGMA) -> int:
    """Largest c with n * P[Bin(k, gamma) >= c + 1] <= 2**-sigma ... i.e. (smallest such m) - 1, by scipy."""
    return next((m for m in range(k + 2) if n * binom.sf(m - 1, k, gamma) <= 2.0**-sigma), k + 1) - 1


def _exact_bound_fixed_set(n: int, k: int, gamma: float, sigma: float = SIGMA) -> int:
    """The same with ceil(gamma n) corrupt clients fixed before the graph (hypergeometric neighbours)."""
    corrupt = math.ceil(gamma * n)
    return next((m for m in range(k + 2) if n * hypergeom.sf(m - 1, n - 1, corrupt, k) <= 2.0**-sigma), k + 1) - 1


SPARSE = [(100, 0.05, True), (100, 0.05, False), (200, 0.1, True), (500, 0.2, True), (1000, 0.3, True), (1000, 0.05, False)]
FALLBACK = [(30, 0.4, True), (100, 0.4, True), (200, 0.4, True), (100, 0.3, False), (50, 0.1, True)]


@pytest.mark.parametrize("n,gamma,active", SPARSE + FALLBACK, ids=lambda v: str(v))
def test_for_clients_threshold_counts_the_declared_corrupt_fraction(n, gamma, active):
    """Whatever (k, t) for_clients returns, sparse or the complete-graph fallback, t must exceed (k + c)/2
    (active) or c (passive) for the c that holds except w.p. 2^-sigma, else it must refuse (ValueError)."""
    try:
        p = SecAggPlus.for_clients(n, dropout=0.1, corrupt=gamma, sigma=SIGMA, active=active)
    except ValueError:
        return
    c = _exact_bound(n, p.k, gamma)
    ok = 2 * p.t > p.k + c if active else p.t > c
    assert ok, f"for_clients({n}, corrupt={gamma}, active={active}) -> k={p.k}, t={p.t}: c={c} corrupt neighbours need t > {(p.k + c) / 2 if active else c}"


@pytest.mark.parametrize("n,gamma,active", SPARSE, ids=lambda v: str(v))
def test_corrupt_neighbour_bound_matches_exact_tails(n, gamma, active):
    """The implementation's c equals the exact binomial quantile, and dominates the fixed-set (hypergeometric) one."""
    p = SecAggPlus.for_clients(n, dropout=0.1, corrupt=gamma, sigma=SIGMA, active=active)
    assert corrupt_neighbours_bound(n, p.k, gamma, SIGMA) == _exact_bound(n, p.k, gamma)
    assert _exact_bound_fixed_set(n, p.k, gamma) <= _exact_bound(n, p.k, gamma)


def test_readme_figures():
    active = SecAggPlus.for_clients(100, corrupt=0.05, active=True)
    passive = SecAggPlus.for_clients(100, corrupt=0.05)
    assert (active.k, active.t, corrupt_neighbours_bound(100, active.k, 0.05, 40)) == (98, 64, 28)
    assert (passive.k, passive.t, corrupt_neighbours_bound(100, passive.k, 0.05, 40)) == (40, 19, 18)


def test_an_equivocating_server_with_the_declared_corrupt_fraction_never_gets_both_secrets_on_the_fallback():
    """for_clients(30, corrupt=0.4, active=True) fell back to the complete graph with t = 20 (protects 10
    colluders), and 12 colluders (40% of 30) got both secrets of client 0. Now the fallback counts the
    binomial c = 29 too and refuses (no t <= 29 exceeds (29 + 29)/2). Where the fallback is accepted
    (n = 30, 5%: k = 29, t = 23, c = 16), the harness with c colluders still gets at most one secret."""
    with pytest.raises(ValueError, match="corrupt=0.4 among n=30"):
        SecAggPlus.for_clients(30, dropout=0.1, corrupt=0.4, active=True)
    p = SecAggPlus.for_clients(30, dropout=0.1, corrupt=0.05, active=True)
    c = _exact_bound(30, p.k, 0.05)
    assert (p.k, p.t, c) == (29, 23, 16)
    setup = RoundSetup(n=30, k=p.k, t=p.t, d=2, ring=Ring(32), active=True, session=b"review01")
    for victim in (0, 17):
        out = equivocation_attack(setup, np.zeros((30, 2), dtype=np.uint32), victim, c, seed=3)
        assert not out.both, f"k={p.k}, t={p.t} declared for 5% corrupt clients: {c} colluders got both secrets of client {victim}"
    assert equivocation_attack(setup, np.zeros((30, 2), dtype=np.uint32), 0, 2 * p.t - p.k + 1, seed=3).both  # c + 2 colluders break it: near tight


@pytest.mark.parametrize("n,c", [(7, 2), (12, 5), (20, 3)])
def test_secagg_declared_colluders_hold_and_one_more_breaks(n, c):
    """SecAgg(active=True, colluders=c): the harness with c colluders gets at most one secret (the claim),
    and the bound is tight where t = (k + c)//2 + 1 leaves no slack (one more colluder may break it)."""
    k, t = SecAgg(active=True, colluders=c).degree_and_threshold(n)
    setup = RoundSetup(n=n, k=k, t=t, d=2, ring=Ring(32), active=True, session=b"review02")
    assert not equivocation_attack(setup, np.zeros((n, 2), dtype=np.uint32), 0, c, seed=1).both
