"""Robust rules: against slow references, invariances, stated kappa, and refusals."""

import contextlib

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from protocols import DropoutSchedule, Stage, secure_sum
from protocols.robust import (
    RULES,
    PlainRobust,
    aggregate,
    bucketing,
    geometric_median,
    kappa,
    krum,
    krum_scores,
    lower_bound,
    multi_krum,
    nnm,
    nnm_kappa,
    squared_distances,
    trimmed_mean,
)

ALL_RULES = sorted(RULES)
TRANSLATION_EQUIVARIANT = ["mean", "coordinate_median", "trimmed_mean", "geometric_median", "krum", "multi_krum"]


@st.composite
def cases(draw, max_n=15, max_d=8):
    n = draw(st.integers(1, max_n))
    f = draw(st.integers(0, (n - 1) // 2))
    d = draw(st.integers(1, max_d))
    x = np.random.default_rng(draw(st.integers(0, 2**32))).normal(size=(n, d)) * draw(st.sampled_from([1e-3, 1.0, 1e3]))
    return x, f


def _slow_krum_scores(x, f):
    n = len(x)
    scores = []
    for i in range(n):
        dists = sorted(float(np.sum((x[i] - x[j]) ** 2)) for j in range(n) if j != i)
        scores.append(sum(dists[: n - f - 1]))
    return np.array(scores)


@settings(max_examples=60, deadline=None)
@given(cases())
def test_krum_scores_and_multi_krum_match_a_loop(case):
    x, f = case
    assert np.allclose(krum_scores(x, f), _slow_krum_scores(x, f), rtol=1e-6, atol=1e-9 * np.abs(x).max() ** 2)
    order = np.argsort(_slow_krum_scores(x, f), kind="stable")
    assert np.allclose(krum(x, f), x[order[0]])
    assert np.allclose(multi_krum(x, f), x[np.sort(order[: len(x) - f])].mean(axis=0))


@settings(max_examples=60, deadline=None)
@given(cases())
def test_trimmed_mean_and_nnm_match_a_loop(case):
    x, f = case
    n = len(x)
    assert np.allclose(trimmed_mean(x, f), np.sort(x, axis=0)[f : n - f].mean(axis=0))
    expected = np.stack([x[np.argsort(((x - x[i]) ** 2).sum(axis=1), kind="stable")[: n - f]].mean(axis=0) for i in range(n)])
    assert np.allclose(nnm(x, f), expected)


@settings(max_examples=150, deadline=None)
@given(cases())
def test_geometric_median_minimizes_the_sum_of_distances(case):
    x, f = case
    z = geometric_median(x, f)
    cost = lambda p: np.linalg.norm(x - p, axis=1).sum()  # noqa: E731
    for candidate in (x.mean(axis=0), np.median(x, axis=0), *x):
        assert cost(z) <= cost(candidate) * (1 + 1e-6) + 1e-9


@settings(max_examples=30, deadline=None)
@given(cases(), st.sampled_from(ALL_RULES), st.integers(0, 2**32))
def test_rules_are_permutation_invariant(case, rule, seed):
    x, f = case
    if rule in ("krum", "multi_krum") and len(x) > 1:  # exact score ties are broken by index, which a permutation moves
        scores = np.sort(krum_scores(x, f))
        m = 1 if rule == "krum" else len(x) - f
        assume(m == len(x) or not np.isclose(scores[m - 1], scores[m], rtol=1e-9, atol=0))
    perm = np.random.default_rng(seed).permutation(len(x))
    assert np.allclose(aggregate(x, f, rule), aggregate(x[perm], f, rule), rtol=1e-6, atol=1e-6 * (1 + np.abs(x).max()))


@settings(max_examples=30, deadline=None)
@given(cases(), st.integers(0, 2**32))
def test_nnm_is_permutation_equivariant(case, seed):
    x, f = case
    perm = np.random.default_rng(seed).permutation(len(x))
    assert np.allclose(nnm(x[perm], f), nnm(x, f)[perm])


@settings(max_examples=30, deadline=None)
@given(cases(), st.sampled_from(TRANSLATION_EQUIVARIANT))
def test_translation_equivariance(case, rule):
    x, f = case
    n, d = x.shape
    # the geometric median is a set when n = 2 or n is even in one dimension: any optimal point is right there
    assume(rule != "geometric_median" or not (n == 2 or (d == 1 and n % 2 == 0)))
    shift = np.linspace(-3, 5, x.shape[1])
    scale = 1 + np.abs(x).max()
    assert np.allclose(aggregate(x + shift, f, rule), aggregate(x, f, rule) + shift, rtol=1e-6, atol=1e-6 * scale)


@given(n=st.integers(1, 12), d=st.integers(1, 6), rule=st.sampled_from(ALL_RULES))
def test_identical_inputs_come_back_unchanged(n, d, rule):
    x = np.tile(np.linspace(-1, 2, d), (n, 1))
    params = {"tau": 100.0, "start": x[0]} if rule == "centered_clipping" else {}
    assert np.allclose(aggregate(x, 0, rule, **params), x[0])


@settings(max_examples=40, deadline=None)
@given(h=st.integers(6, 30), data=st.data())
def test_empirical_kappa_stays_within_the_stated_coefficient(h, data):
    f = data.draw(st.integers(1, (h - 1) // 2))
    n = h + f
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32)))
    honest = rng.normal(size=(h, 5)) + rng.normal(size=5) * 10
    attack = data.draw(st.sampled_from(["far", "alie", "cluster"]))
    if attack == "far":
        bad = np.full((f, 5), 1e4)
    elif attack == "alie":
        bad = np.repeat((honest.mean(axis=0) - 1.5 * honest.std(axis=0))[None], f, axis=0)
    else:
        bad = honest.mean(axis=0) + rng.normal(size=(f, 5)) * 3
    x = np.concatenate([honest, bad])[rng.permutation(n)]
    spread = ((honest - honest.mean(axis=0)) ** 2).sum(axis=1).mean()
    for rule in ("trimmed_mean", "coordinate_median", "geometric_median", "krum"):
        error = ((aggregate(x, f, rule) - honest.mean(axis=0)) ** 2).sum()
        assert error <= kappa(rule, n, f) * spread * (1 + 1e-9), rule
        error = ((aggregate(x, f, rule, pre="nnm") - honest.mean(axis=0)) ** 2).sum()
        assert error <= nnm_kappa(n, f, kappa(rule, n, f)) * spread * (1 + 1e-9), f"nnm + {rule}"


def test_kappa_values_and_lower_bound():
    assert lower_bound(10, 2) == pytest.approx(2 / 6)
    assert kappa("krum", 10, 2) == pytest.approx(6 * (1 + 2 / 6))
    assert kappa("trimmed_mean", 10, 2) == pytest.approx(6 * (2 / 6) * (1 + 2 / 6))
    assert kappa("mean", 10, 2) == np.inf and kappa("multi_krum", 10, 2) is None
    for rule in ("trimmed_mean", "coordinate_median", "geometric_median", "krum"):
        for n, f in ((5, 1), (21, 10), (100, 7)):
            assert kappa(rule, n, f) >= lower_bound(n, f)


@pytest.mark.parametrize("rule", ALL_RULES)
def test_rules_refuse_n_at_most_2f_and_bad_shapes(rule):
    with pytest.raises(ValueError, match="n > 2f"):
        aggregate(np.zeros((4, 3)), 2, rule)
    with pytest.raises(ValueError, match="shape"):
        aggregate(np.zeros(3), 0, rule)
    with pytest.raises(ValueError, match="NaN"):
        aggregate(np.array([[np.nan, 1.0]]), 0, rule)


@settings(max_examples=20, deadline=None)
@given(cases(), st.sampled_from(ALL_RULES))
def test_rules_never_mutate_their_input(case, rule):
    x, f = case
    before = x.copy()
    aggregate(x, f, rule)
    aggregate(x, f, rule, pre="nnm")
    assert np.array_equal(x, before)


def test_bucketing_averages_buckets_of_the_given_permutation():
    x = np.arange(10, dtype=float)[:, None]
    perm = np.array([9, 8, 7, 6, 5, 4, 3, 2, 1, 0])
    assert np.allclose(bucketing(x, 1, s=3, perm=perm)[:, 0], [8.0, 5.0, 2.0, 0.0])
    assert np.allclose(bucketing(x, 1, s=2, seed=3), bucketing(x, 1, s=2, seed=3))
    with pytest.raises(ValueError, match="permutation"):
        bucketing(x, 1, s=2, perm=np.zeros(10, dtype=int))
    with pytest.raises(ValueError, match="perm"):
        bucketing(x, 1, s=2)


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="unknown rule"):
        aggregate(np.zeros((3, 2)), 0, "bulyan")
    with pytest.raises(ValueError, match="unknown pre-aggregator"):
        PlainRobust(rule="krum", pre="mixing")


def test_plain_robust_protocol_reports_no_privacy_and_kappa():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 30)).astype(np.float32)
    x[:2] = 1e3
    out = secure_sum(x, protocol=PlainRobust(rule="krum", f=2), dropouts=DropoutSchedule({5: Stage.MASKED_INPUT}), seed=1)
    g = out.reports[0].guarantee
    assert g.threat_model.name == "NONE" and "every update in the clear" in g.server_learns
    assert g.parameters["kappa"] == pytest.approx(round(kappa("krum", 11, 2), 4))
    assert 5 not in out.included and np.abs(out.result).max() < 10
    assert out.reports[0].cost.bytes_up_max == 4 + 30 * 4 + 24 + 32


def _exact_distances(x):
    y = x.astype(np.float64)
    return ((y[:, None, :] - y[None, :, :]) ** 2).sum(axis=2)


@contextlib.contextmanager
def _blocks(block_bytes):
    """squared_distances with blocks of `block_bytes` (None: the default)."""
    import protocols.robust.validation as validation

    saved = validation.BLOCK_BYTES
    validation.BLOCK_BYTES = block_bytes or saved
    try:
        yield
    finally:
        validation.BLOCK_BYTES = saved


@settings(max_examples=40, deadline=None)
@given(cases(max_n=9, max_d=40), st.integers(8, 200))
def test_blocked_distances_match_pairwise_differences(case, block_bytes):
    x, _ = case
    with _blocks(block_bytes):  # blocks of a few columns: the block loop, its last short block, and one column
        assert np.allclose(squared_distances(x), _exact_distances(x), rtol=1e-9, atol=1e-12 * np.abs(x).max() ** 2)
        y = x.astype(np.float32)
        assert np.allclose(squared_distances(y), _exact_distances(y), rtol=2e-4, atol=1e-6 * np.abs(x).max() ** 2)


@pytest.mark.parametrize("block_bytes", [None, 4096])
def test_distances_survive_a_large_common_offset(block_bytes):
    """The attack on the Gram-matrix formula: norms ~1e5 times the distances. Uncentred float32 products lose every digit."""
    rng = np.random.default_rng(3)
    x = (1e4 + rng.normal(size=(12, 3000)) * 1e-1).astype(np.float32)
    exact = _exact_distances(x)
    gram = (x @ x.T).astype(np.float64)  # what a distance without centring computes
    naive = np.diag(gram)[:, None] + np.diag(gram)[None, :] - 2 * gram
    assert not np.allclose(naive, exact, rtol=0.1)
    with _blocks(block_bytes):
        assert np.allclose(squared_distances(x), exact, rtol=1e-4)
        assert np.array_equal(np.argsort(krum_scores(x, 3)), np.argsort(_slow_krum_scores(x.astype(np.float64), 3)))


@pytest.mark.parametrize("rule, pre", [("krum", None), ("multi_krum", None), ("trimmed_mean", "nnm")])
def test_distance_rules_find_a_nan_or_inf_in_any_block(rule, pre):
    with _blocks(64):  # blocks of 2 columns over 8 rows
        for bad in (np.nan, np.inf, -np.inf):
            x = np.ones((8, 9), dtype=np.float32)
            x[5, 8] = bad  # the last, one-column block
            with pytest.raises(ValueError, match="NaN or infinity"):
                aggregate(x, 2, rule, pre=pre)
        huge = np.full((8, 9), 3e38, dtype=np.float32)  # finite, though its column sums overflow float32: not refused
        with np.errstate(over="ignore", invalid="ignore"):
            assert squared_distances(huge).shape == (8, 8)


def test_krum_needs_no_copy_of_its_input():
    import tracemalloc

    x = np.random.default_rng(0).normal(size=(50, 200_000)).astype(np.float32)
    for rule in ("krum", "multi_krum"):
        tracemalloc.start()
        aggregate(x, 10, rule)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < x.nbytes / 4, (rule, peak)
    selected = np.argsort(krum_scores(x, 10), kind="stable")[:40]
    assert np.array_equal(multi_krum(x, 10), x[np.sort(selected)].mean(axis=0))  # the same bits as the gathered mean
