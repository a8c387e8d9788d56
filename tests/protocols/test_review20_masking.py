"""Review 20, item 3 (held): the numbers SecAgg+'s sampled report states (`SecAggPlus._collusion`: no client has more than
c corrupt neighbours, t > c or t > (k + c)/2, and on a sparse graph the natural cut n^2 (gamma + delta)^k and, against an
active server, the claimed cut, each 2^-(sigma + grind_bits) per graph) recomputed independently of
`protocols.masking.graph`'s helpers, with scipy's binomial tails, over random n, fractions, sigma, grind bits and modes;
the complete-graph fallback included."""

import math

from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binom

from protocols.masking.secagg import SecAggPlus


@settings(max_examples=150, deadline=None)
@given(n=st.integers(12, 400), corrupt=st.sampled_from([0.01, 0.03, 0.05, 5 / 64, 0.1]), dropout=st.sampled_from([0.0, 0.05, 0.1, 0.2, 0.3]),
       sigma=st.sampled_from([20.0, 40.0]), grind=st.sampled_from([0.0, 10.0]), active=st.booleans())
def test_held_each_stated_condition_holds_per_graph_at_sigma_plus_grind_bits(n, corrupt, dropout, sigma, grind, active):
    try:
        plus = SecAggPlus.for_clients(n, dropout=dropout, corrupt=corrupt, sigma=sigma, grind_bits=grind, active=active)
    except ValueError:
        return  # no t meets the fractions, even on the complete graph: refused, nothing stated
    k, t, c = plus.k, plus.t, plus.colluder_count(n, plus.k, plus.t)
    bad = 2.0 ** -(sigma + grind)
    assert 1 <= t <= k and (2 * t > k + c if active else t > c), (k, t, c)
    assert n * binom.sf(c, k, corrupt) <= bad * (1 + 1e-9), f"some client has more than c={c} of its k={k} neighbours corrupt"
    if k < n - 1:  # a sparse Harary graph: two runs of k/2 positions cut it
        assert math.log2(n * n) + k * math.log2(dropout + corrupt) <= -(sigma + grind) + 1e-9, "natural cut"
        need = t - k // 2
        if active:
            assert need >= 1, f"t={t} <= k/2: the server cuts the graph by claims alone"
            assert math.log2(n * (n - k) / 2) + 2 * math.log2(max(binom.sf(need - 1, k // 2, corrupt), 1e-300)) <= -(sigma + grind) + 1e-9, "claimed cut"
    else:
        assert k == n - 1
