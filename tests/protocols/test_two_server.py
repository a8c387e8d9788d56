"""Two-server robust aggregation over additive shares: the rule's exact answer for Krum rules, the
stated error for clipping rules, uniform server views, and the building blocks (triples, truncation)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from protocols import DropoutSchedule, Stage, secure_sum
from protocols.core.errors import BelowThreshold
from protocols.core.messages import Kind
from protocols.core.wire import HEADER_BYTES, SECOND_SERVER
from protocols.robust.rules import centered_clipping, krum_select
from protocols.testing import schedules
from protocols.two_server import TwoServerRobust
from secagg.beaver import deal_gram, gram_share, lift_signed, to_signed, triple_from_seed, truncate
from secagg.errors import AlreadyUsed
from secagg.randomness import SeededRandomness
from secagg.ring import Ring


def signed(x: np.ndarray, bits: int) -> np.ndarray:
    return to_signed(lift_signed(x, bits))


def exact_distances(x: np.ndarray) -> np.ndarray:
    """Squared distances in Python integers (no float rounding), as float64 for the rule."""
    rows = [[int(v) for v in row] for row in x]
    n = len(rows)
    return np.array([[float(sum((a - b) ** 2 for a, b in zip(rows[i], rows[j]))) for j in range(n)] for i in range(n)])


@st.composite
def cases(draw):
    n = draw(st.integers(3, 12))
    d = draw(st.integers(1, 200))
    bits = draw(st.integers(4, 24))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    ring = Ring(bits)
    x = ring.reduce(rng.integers(0, 2**bits, (n, d), dtype=np.uint64).astype(ring.dtype))
    dropouts = draw(schedules(n, stages=(Stage.MASKED_INPUT,), max_rate=0.3))
    m = sum(dropouts.active(i, Stage.MASKED_INPUT) for i in range(n))
    f = draw(st.integers(0, max(0, (m - 1) // 2)))
    return x, bits, dropouts, m, f


@settings(max_examples=40)
@given(case=cases(), rule=st.sampled_from(["krum", "multi_krum"]), seed=st.integers(0, 2**31))
def test_krum_rules_over_shares_equal_the_rule_on_the_exact_distances(case, rule, seed):
    x, bits, dropouts, m, f = case
    if m <= 2 * f or m == 0:
        with pytest.raises(BelowThreshold):
            secure_sum(x, protocol=TwoServerRobust(rule=rule, f=f, bits=bits), dropouts=dropouts, seed=seed)
        return
    out = secure_sum(x, protocol=TwoServerRobust(rule=rule, f=f, bits=bits), dropouts=dropouts, seed=seed)
    alive = [i for i in range(len(x)) if dropouts.active(i, Stage.MASKED_INPUT)]
    chosen = krum_select(exact_distances(signed(x[alive], bits)), f, 1 if rule == "krum" else None)
    assert out.included == tuple(alive[i] for i in chosen)
    ring = Ring(bits)
    assert np.array_equal(out.result, ring.sum(x[list(out.included)]))
    assert out.reports[0].guarantee.exact and out.weights == (1.0,) * len(out.included)


@settings(max_examples=25)
@given(case=cases(), rule=st.sampled_from(["centered_clipping", "norm_bounding"]), iterations=st.integers(1, 3),
       tau_fraction=st.floats(0.05, 2.0), seed=st.integers(0, 2**31))
def test_clipping_rules_over_shares_within_the_stated_error(case, rule, iterations, tau_fraction, seed):
    x, bits, dropouts, m, f = case
    if m <= 2 * f or m == 0:
        return
    alive = [i for i in range(len(x)) if dropouts.active(i, Stage.MASKED_INPUT)]
    values = signed(x[alive], bits).astype(np.float64)
    tau = max(1.0, tau_fraction * float(np.median(np.linalg.norm(values, axis=1))))
    protocol = TwoServerRobust(rule=rule, f=f, bits=bits, tau=tau, iterations=iterations)
    out = secure_sum(x, protocol=protocol, dropouts=dropouts, seed=seed)
    expected = centered_clipping(values, f, tau=tau, iterations=protocol.iterations) * m
    error = np.abs(signed(out.result, bits) - expected) % 2**bits  # the result is read back mod 2**bits
    g = out.reports[0].guarantee
    assert out.included == tuple(alive)
    assert np.linalg.norm(np.minimum(error, 2**bits - error)) <= g.numeric_error


def test_second_server_view_of_a_zero_input_is_uniform_bytes():
    x = np.zeros((3, 8192), dtype=np.uint16)
    seen = []

    def wire(src, dst, sealed):
        if dst == SECOND_SERVER and sealed[3] == Kind.SHARE_VECTOR:
            seen.append(sealed[HEADER_BYTES + 8 : -32])
        return [sealed]

    secure_sum(x, protocol=TwoServerRobust(rule="multi_krum", f=1, bits=16), seed=4, wire=wire)
    assert len(seen) == 3
    counts = np.bincount(np.frombuffer(b"".join(seen), dtype=np.uint8), minlength=256)
    assert stats.chisquare(counts).pvalue > 1e-6


def test_opened_matrix_is_the_input_masked_by_a_uniform_triple():
    rng = SeededRandomness(9)
    t0, t1 = deal_gram(4, 2048, rng, rng.bytes(32))
    x = np.zeros((4, 2048), dtype=np.uint64)
    e = (x - t0.a) + (x - t1.a)  # what the servers open: -A, uniform
    counts = np.bincount(e.view(np.uint8).ravel(), minlength=256)
    assert stats.chisquare(counts).pvalue > 1e-6
    g = to_signed(gram_share(0, e, t0) + gram_share(1, e, t1))
    assert np.array_equal(g, np.zeros((4, 4), dtype=np.int64))
    with pytest.raises(AlreadyUsed):
        gram_share(0, e, t0)
    assert np.array_equal(triple_from_seed(b"\x01" * 32, 2, 3).a, triple_from_seed(b"\x01" * 32, 2, 3).a)


@given(values=st.lists(st.integers(-(2**40), 2**40), min_size=1, max_size=200), k=st.integers(1, 20), seed=st.integers(0, 2**31))
def test_truncation_is_floor_or_one_more(values, k, seed):
    v = np.array(values, dtype=np.int64).view(np.uint64)
    s0 = SeededRandomness(seed).uint64(len(values))
    got = to_signed(truncate(s0, k, 0) + truncate(v - s0, k, 1))
    floor = np.array(values, dtype=np.int64) >> k
    assert np.all((got == floor) | (got == floor + 1))


def test_parameters_that_would_wrap_or_need_comparison_are_refused():
    with pytest.raises(ValueError, match="2\\*\\*63"):
        secure_sum(np.zeros((3, 10**5), dtype=np.uint32), protocol=TwoServerRobust(bits=24), seed=0)
    with pytest.raises(ValueError, match="unknown rule"):
        TwoServerRobust(rule="geometric_median")
    with pytest.raises(ValueError, match="validate=True"):
        TwoServerRobust(rule="coordinate_median", validate=False)
    with pytest.raises(BelowThreshold):
        secure_sum(np.zeros((4, 5), dtype=np.uint16), protocol=TwoServerRobust(f=2, bits=16), seed=0,
                   dropouts=DropoutSchedule({0: Stage.MASKED_INPUT}))


def test_distributed_dp_under_krum_counts_each_clients_own_share_whatever_the_selection():
    """Krum's one selected share and Multi-Krum's five reach the output whole, but both rules chose them from the noisy
    inputs: the noise layer's epsilon counts one share, each client's own (review 8), the same for both rules and equal
    to one share's epsilon (`share_mechanism`)."""
    from protocols.accounting import epsilon as epsilon_of
    from protocols.layers import distributed_dp

    x = np.random.default_rng(5).normal(0, 0.05, (6, 64)).astype(np.float32)
    outs = {}
    for rule in ("krum", "multi_krum"):
        stack = distributed_dp(TwoServerRobust(rule=rule, f=1, bits=20), clients=6, dim=64, clip=1.0, noise_multiplier=1.0)
        outs[rule] = secure_sum(x, protocol=stack, seed=6)
    noise = {rule: next(r.guarantee for r in out.reports if r.layer == "noise") for rule, out in outs.items()}
    assert noise["krum"].parameters["noise_shares_in_output"] == 1
    assert noise["multi_krum"].parameters["noise_shares_in_output"] == 5
    assert noise["krum"].parameters["counted_shares"] == noise["multi_krum"].parameters["counted_shares"] == 1
    layer = stack
    while not hasattr(layer, "share_mechanism"):
        layer = layer.inner
    one_share = layer.share_mechanism()
    assert noise["krum"].epsilon == noise["multi_krum"].epsilon == pytest.approx(epsilon_of(one_share, steps=1, delta=noise["krum"].delta))
    assert "counts each client's own noise share only" in outs["krum"].reports[0].guarantee.notes


@settings(max_examples=20, deadline=None)
@given(case=cases(), rule=st.sampled_from(["krum", "multi_krum", "centered_clipping"]), seed=st.integers(0, 2**31))
def test_nnm_over_shares_matches_the_plaintext_preaggregator(case, rule, seed):
    from protocols.robust.preaggregators import nnm_neighbours

    x, bits, dropouts, m, f = case
    if m <= 2 * f or m == 0 or f == 0:
        return
    alive = [i for i in range(len(x)) if dropouts.active(i, Stage.MASKED_INPUT)]
    values = signed(x[alive], bits).astype(np.float64)
    tau = float(np.median(np.linalg.norm(values, axis=1))) + 1.0
    protocol = TwoServerRobust(rule=rule, f=f, bits=bits, pre="nnm", tau=tau)
    out = secure_sum(x, protocol=protocol, dropouts=dropouts, seed=seed)
    g = out.reports[0].guarantee
    # NNM's neighbours from the exact integer distances (a float Gram matrix can break distance ties the other way)
    mixed = nnm_neighbours(exact_distances(values.astype(np.int64)), f) @ values / (m - f)
    if rule == "centered_clipping":  # m v_1 of the mixed rows
        expected = centered_clipping(mixed, f, tau=tau, iterations=1) * m
    else:  # the sum of the selected mixed rows (selection on their exact integer distances, (m - f) times the means)
        chosen = krum_select(exact_distances(np.round(mixed * (m - f)).astype(np.int64)), f, 1 if rule == "krum" else None)
        expected = mixed[chosen].sum(axis=0)
        assert np.isclose(sum(out.weights), len(chosen))
    error = np.abs(signed(out.result, bits) - expected) % 2**bits
    assert np.linalg.norm(np.minimum(error, 2**bits - error)) <= g.numeric_error + 1e-6
    assert g.parameters["pre"] == "nnm" and g.exact == (g.numeric_error == 0) and "NNM" in g.notes
    with pytest.raises(ValueError, match="pre"):
        TwoServerRobust(pre="bucketing")


@settings(max_examples=12, deadline=None)
@given(case=cases(), rule=st.sampled_from(["coordinate_median", "trimmed_mean"]), seed=st.integers(0, 2**31))
def test_order_statistics_over_shares_equal_the_plaintext_rule(case, rule, seed):
    from protocols.robust import aggregate

    x, bits, dropouts, m, f = case
    if m <= 2 * f or m == 0:
        return
    alive = [i for i in range(len(x)) if dropouts.active(i, Stage.MASKED_INPUT)]
    values = signed(x[alive], bits)
    out = secure_sum(x, protocol=TwoServerRobust(rule=rule, f=f, bits=bits), dropouts=dropouts, seed=seed)
    assert out.included == tuple(alive)
    expected = aggregate(values.astype(np.float64), f, rule) * m  # m x the rule's value, exact for the median
    ring = Ring(bits)  # the result lives in Z_2^bits, as every two-server sum does
    g = out.reports[0].guarantee
    if rule == "coordinate_median" or g.exact:
        assert np.array_equal(out.result, ring.reduce(np.round(expected).astype(np.int64).astype(np.uint64).astype(ring.dtype)))
    else:
        error = np.abs(signed(out.result, bits) - expected) % 2**bits
        assert np.all(np.minimum(error, 2**bits - error) <= 0.5) and g.numeric_error == pytest.approx(0.5 * np.sqrt(x.shape[1]))


@pytest.mark.parametrize(("near", "stage"), [(2, "rule"), (3, None)])
def test_a_clipping_output_of_fewer_weighted_inputs_than_min_clients_is_refused_naming_them(near, stage):
    """Five inputs reach both servers (>= 2f + 1 = 3 = min_clients, so the share-stage count passes), `near` of them
    within tau of 0 and the others past 8192 tau (applied weight 0): with 2 weighted inputs the clipping count refuses
    at stage "rule", naming the count, what was counted and min_clients; with 3 the round completes over those 3."""
    x = np.zeros((5, 2), dtype=np.int64)
    x[near:, 0] = 8192 * 10 * 3
    protocol = TwoServerRobust(rule="centered_clipping", f=1, bits=24, tau=10.0, iterations=1, min_clients=3)
    if stage is None:
        assert secure_sum(Ring(24).reduce(x.astype(np.uint64)).astype(np.uint32), protocol=protocol, seed=1).included == (0, 1, 2)
        return
    with pytest.raises(BelowThreshold) as caught:
        secure_sum(Ring(24).reduce(x.astype(np.uint64)).astype(np.uint32), protocol=protocol, seed=1)
    assert caught.value.stage == stage and caught.value.party == "server"
    assert str(caught.value).endswith("2 inputs have a positive applied clipping weight, the round needs >= 3 (min_clients = 3)")
