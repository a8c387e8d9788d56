"""The SecAgg+ graph and its parameter choice."""

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy import stats

from protocols.masking.graph import (
    HararyGraph,
    binomial_tail,
    check_threshold,
    choose_degree_and_threshold,
    colluder_bound,
    corrupt_neighbours_bound,
    harary_neighbours,
)


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
@example(n=54, dropout=0.0, corrupt=0.078125, active=True)  # the active choice skipped the natural cut: k = 14, 2**-39.98
def test_choice_meets_its_stated_conditions(n, dropout, corrupt, active):
    try:
        k, t = choose_degree_and_threshold(n, dropout, corrupt, 40, 30, active=active)
    except ValueError as exc:  # only where even the complete graph has no t counting the binomial c
        c = corrupt_neighbours_bound(n, n - 1, corrupt, 40)
        assert "corrupt=" in str(exc) and ((n - 1 + c) // 2 + 1 if active else c + 1) > n - 1
        return
    assert (k // 2 < t if active else 1 <= t) and t <= k
    c = corrupt_neighbours_bound(n, k, corrupt, 40)
    assert (2 * t > k + c) if active else t > c  # on the complete-graph fallback too
    if k < n - 1:
        assert k % 2 == 0
        assert n * binomial_tail(k, corrupt, t) <= 2**-40
        if active:  # t > (k + c)/2 for every c reached with probability above 2^-40: 2t - k corrupt neighbours are that rare
            assert n * binomial_tail(k, corrupt, 2 * t - k) <= 2**-40
        assert n * n * (dropout + corrupt) ** k <= 2**-40
        assert n * binomial_tail(k, dropout, k - t + 1) <= 2**-30


def test_sparse_graph_is_logarithmic():
    degrees = [choose_degree_and_threshold(n, 0.1, 0.05, 40, 30)[0] for n in (1000, 10_000, 100_000)]
    assert degrees == sorted(degrees) and degrees[-1] < 80  # grows like log n, far below n


def test_bad_fractions_are_refused():
    with pytest.raises(ValueError, match="dropout"):
        choose_degree_and_threshold(100, 0.6, 0.5, 40, 30)


@settings(max_examples=30)
@given(n=st.integers(3, 300), data=st.data())
def test_one_clients_neighbours_are_its_row_of_the_whole_graph(n, data):
    k = data.draw(st.sampled_from(list(range(2, n - 1, 2)) + [n - 1]))
    graph = HararyGraph(n, k, data.draw(st.binary(min_size=1, max_size=32)))
    whole = graph.all()
    assert [graph.neighbours(i) for i in range(n)] == whole
    ids = np.arange(n)
    assert sorted(graph._label(ids).tolist()) == list(range(n))  # a permutation of the ids
    assert np.array_equal(graph._label(graph._label(ids), inverse=True), ids)


def test_the_relabelling_is_uniform_over_seeds():
    """Where client 0 lands over 4000 graph seeds: chi-square against uniform over 10 positions (9 dof)."""
    positions = [int(HararyGraph(10, 4, i.to_bytes(4, "big"))._label(np.array([0]), inverse=True)[0]) for i in range(4000)]
    counts = np.bincount(positions, minlength=10)
    assert ((counts - 400) ** 2 / 400).sum() < 35


@given(k=st.integers(2, 200), p=st.floats(0.0, 0.3), n=st.integers(1, 10_000))
def test_corrupt_neighbours_bound_is_the_binomial_quantile(k, p, n):
    c = corrupt_neighbours_bound(n, k, p, 40)
    assert n * stats.binom.sf(c, k, p) <= 2**-40 * (1 + 1e-6) + 1e-300  # more than c corrupt neighbours: rare enough
    assert c < 0 or n * stats.binom.sf(c - 1, k, p) > 2**-40 * (1 - 1e-6)  # and c is the smallest such


@given(k=st.integers(2, 60), data=st.data())
def test_threshold_check_is_the_colluder_bound(k, data):
    t, c, active = data.draw(st.integers(1, k)), data.draw(st.integers(0, k)), data.draw(st.booleans())
    ok = t <= k and (not active or 2 * t > k) and (2 * t > k + c if active else t > c)
    assert ok == (colluder_bound(k, t, active) >= c and (not active or t > k // 2))
    if ok:
        assert check_threshold(k, t, active, colluders=c) == t
    else:
        with pytest.raises(ValueError, match="t"):
            check_threshold(k, t, active, colluders=c)
