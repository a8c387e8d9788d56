"""The SecAgg+ graph and its parameter choice."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from protocols.graph import binomial_tail, choose_degree_and_threshold, harary_neighbours


@given(n=st.integers(3, 200), data=st.data())
def test_harary_graph_is_k_regular_and_symmetric(n, data):
    k = data.draw(st.sampled_from(list(range(2, n - 1, 2)) + [n - 1]))
    graph = harary_neighbours(n, k, data.draw(st.binary(min_size=1, max_size=32)))
    assert all(len(nb) == k and i not in nb for i, nb in enumerate(graph))
    assert all(i in graph[j] for i, nb in enumerate(graph) for j in nb)


@given(k=st.integers(1, 300), p=st.floats(0.001, 0.999), data=st.data())
def test_binomial_tail_matches_scipy(k, p, data):
    m = data.draw(st.integers(0, k))
    assert binomial_tail(k, p, m) == pytest.approx(stats.binom.sf(m - 1, k, p), rel=1e-7, abs=1e-200)  # only values far above 1e-200 matter (thresholds are ~2**-40)


@settings(max_examples=40)
@given(n=st.integers(3, 5000), dropout=st.floats(0.0, 0.3), corrupt=st.floats(0.0, 0.2), active=st.booleans())
def test_choice_meets_its_stated_conditions(n, dropout, corrupt, active):
    k, t = choose_degree_and_threshold(n, dropout, corrupt, 40, 30, active=active)
    assert (k // 2 < t if active or k == n - 1 else 1 <= t) and t <= k
    if k < n - 1:
        assert k % 2 == 0
        assert n * binomial_tail(k, corrupt, t) <= 2**-40
        assert n * n * (dropout + corrupt) ** k <= 2**-40
        assert n * binomial_tail(k, dropout, k - t + 1) <= 2**-30


def test_sparse_graph_is_logarithmic():
    degrees = [choose_degree_and_threshold(n, 0.1, 0.05, 40, 30)[0] for n in (1000, 10_000, 100_000)]
    assert degrees == sorted(degrees) and degrees[-1] < 80  # grows like log n, far below n


def test_bad_fractions_are_refused():
    with pytest.raises(ValueError, match="dropout"):
        choose_degree_and_threshold(100, 0.6, 0.5, 40, 30)
