"""Per-client state is keyed by the client's persistent id, and the stateful layers run with remote clients.

The adversary of these tests is client sampling itself: rows are handed out afresh every round, so a layer
that keys its state by row gives client 7's error-feedback residual to whoever sits in its row next round.
The remote runs (`tests.protocols.remote_clients`) give every client a stack object of its own, so a layer
that kept per-client state at the server, or read the clip norm from its own (stale) object, would differ
from the in-process round.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import BelowThreshold, DropoutSchedule, PlainSum, SecAgg, Stage, secure_sum
from protocols.core.errors import MalformedMessage
from protocols.core.identity import client_id, client_ids
from protocols.core.parallel import encode_pair, parse_pair
from protocols.layers import AdaptiveClip, DiscreteEncode, DistributedNoise, TopK
from protocols.robust import PlainRobust
from protocols.testing import schedules
from secagg import SeededRandomness
from tests.protocols.remote_clients import run_remote


def _reference_top_k(v: np.ndarray, k: int) -> np.ndarray:
    """The k largest |v_j| kept, written from the definition (a stable sort, not the layer's argpartition)."""
    sent = np.zeros_like(v)
    keep = np.argsort(-np.abs(v), kind="stable")[:k]
    sent[keep] = v[keep]
    return sent


@st.composite
def sampled_rounds(draw, max_population: int = 9, max_rounds: int = 5):
    """(population, d, k, per round: the ids of its rows, a random subset in a random order)."""
    population, d = draw(st.integers(3, max_population)), draw(st.integers(2, 10))
    k = draw(st.integers(1, d))
    rounds = []
    for _ in range(draw(st.integers(2, max_rounds))):
        m = draw(st.integers(2, population))
        rounds.append(tuple(draw(st.permutations(range(population)))[:m]))
    return population, d, k, rounds


@settings(max_examples=25, deadline=None)
@given(case=sampled_rounds(), seed=st.integers(0, 2**32 - 1))
def test_sampled_rounds_with_permuted_rows_give_each_client_its_own_residual(case, seed):
    _, d, k, rounds = case
    rng = np.random.default_rng(seed)
    layer = TopK(k, PlainRobust(rule="mean", f=0))
    residual: dict[int, np.ndarray] = {}
    for r, ids in enumerate(rounds):
        x = rng.normal(size=(len(ids), d))
        out = secure_sum(x, protocol=layer, seed=r, clients=ids)
        sent = []
        for u, c in enumerate(ids):
            v = x[u] + residual.get(c, np.zeros(d))
            sent.append(_reference_top_k(v, k))
            residual[c] = v - sent[-1]
        # float32 rounding of the sent rows (the layer's and this mean's may differ by an ulp): atol 1e-6, not numpy's 1e-8
        assert np.allclose(out.result, np.mean(np.stack(sent).astype(np.float32), axis=0), atol=1e-6)
    assert sorted(layer.memory) == sorted(residual)
    for c, e in residual.items():
        assert np.array_equal(layer.memory[c], e), f"client {c} got another client's residual"


def test_without_ids_row_i_is_client_i_and_ids_are_checked():
    layer = TopK(1, PlainRobust(rule="mean", f=0))
    secure_sum(np.eye(3), protocol=layer, seed=0)
    assert sorted(layer.memory) == [0, 1, 2]
    with pytest.raises(ValueError, match="one id a row"):
        secure_sum(np.eye(3), protocol=layer, seed=0, clients=[4, 5])
    with pytest.raises(ValueError, match="distinct"):
        secure_sum(np.eye(3), protocol=layer, seed=0, clients=[4, 4, 5])
    with pytest.raises(TypeError):
        secure_sum(np.eye(3), protocol=layer, seed=0, clients=[4.5, 5, 6])
    with client_ids({0: 7}):
        assert (client_id(0), client_id(1)) == (7, 1)
    assert client_id(0) == 0


def _top_k_stack(k: int):
    return TopK(k, DiscreteEncode(2.0**12, 10.0, SecAgg(bits=32), beta=0.0))


@settings(max_examples=10, deadline=None)
@given(case=sampled_rounds(max_population=6, max_rounds=4), seed=st.integers(0, 2**32 - 1), drop=st.booleans())
def test_top_k_with_remote_clients_gives_the_in_process_rounds_and_keeps_no_residual_at_the_server(case, seed, drop):
    _, d, k, rounds = case
    rng = np.random.default_rng(seed)
    here, server, nodes = _top_k_stack(k), _top_k_stack(k), {}
    for r, ids in enumerate(rounds):
        x = rng.normal(size=(len(ids), d))
        dropouts = DropoutSchedule({0: Stage.UNMASKING} if drop and len(ids) > 3 else {})
        a = secure_sum(x, protocol=here, dropouts=dropouts, seed=r, clients=ids)
        b = run_remote(server, lambda c: _top_k_stack(k), x, clients=ids, store=nodes, dropouts=dropouts, seed=r)
        assert np.array_equal(a.result, b.result) and a.included == b.included
        assert [rep.guarantee.parameters for rep in a.reports] == [rep.guarantee.parameters for rep in b.reports]
    assert server.memory == {}  # the server's object never held a residual
    assert sorted(nodes) == sorted(here.memory)
    for c, state in nodes.items():
        assert np.array_equal(state["top-k"], here.memory[c])


def _adaptive(norm: float = 0.5, k: int = 3):
    count = DistributedNoise("skellam", 0.5, 1.0, 1.0, SecAgg(bits=16))
    return AdaptiveClip(norm=norm, target_quantile=0.5, learning_rate=0.5, count=count, inner=TopK(k, PlainRobust(rule="mean", f=0)))


def _outcome(run, *args, **kwargs):
    """The round's output, or the message of the BelowThreshold that stopped it (too few survivors)."""
    try:
        return run(*args, **kwargs)
    except BelowThreshold as exc:
        return str(exc)


@settings(max_examples=8, deadline=None)
@given(case=sampled_rounds(max_population=7, max_rounds=4), seed=st.integers(0, 2**32 - 1), data=st.data())
def test_adaptive_clip_with_remote_clients_gives_the_in_process_rounds(case, seed, data):
    _, d, k, rounds = case
    rng = np.random.default_rng(seed)
    here, server, nodes = _adaptive(k=k), _adaptive(k=k), {}
    assert here.splits
    for r, ids in enumerate(rounds):
        x = rng.normal(size=(len(ids), d))
        dropouts = data.draw(schedules(len(ids), max_rate=0.3))
        a = _outcome(secure_sum, x, protocol=here, dropouts=dropouts, seed=r, clients=ids)
        b = _outcome(run_remote, server, lambda c, k=k: _adaptive(norm=123.0, k=k), x, clients=ids, store=nodes, dropouts=dropouts, seed=r)
        if isinstance(a, str):
            assert a == b
            continue
        assert np.array_equal(a.result, b.result) and a.included == b.included
        assert a.reports[-1].guarantee.parameters == b.reports[-1].guarantee.parameters  # the nodes clipped to the announced norm
        assert here.norm == server.norm
        report = a.reports[-1]
        assert report.layer == "adaptive-clip" and report.cost.bytes_up_mean > 0  # the count's own frames
        assert report.cost.bytes_up_mean < a.reports[0].cost.bytes_up_mean  # the inner figures carry the whole round
    assert server.inner.memory == {} and sorted(nodes) == sorted(here.inner.memory)
    for c, state in nodes.items():
        assert np.array_equal(state["top-k"], here.inner.memory[c])


def test_adaptive_clip_split_tracks_the_target_quantile():
    n, d = 12, 8
    count = DistributedNoise("skellam", 0.5, 1.0, 1.0, PlainSum(bits=16))
    layer = AdaptiveClip(norm=0.1, target_quantile=0.5, learning_rate=0.5, count=count, inner=PlainRobust(rule="mean", f=0))
    rng = np.random.default_rng(0)
    for r in range(40):
        x = rng.normal(size=(n, d))
        out = secure_sum(x, protocol=layer, seed=r)
        used = out.reports[-1].guarantee.parameters["norm_used"]
        assert np.linalg.norm(out.result) <= used + 1e-6  # the mean of rows clipped to the norm of this round
    median = np.median(np.linalg.norm(rng.normal(size=(10000, d)), axis=1))
    assert abs(layer.norm / median - 1) < 0.3


def test_a_client_refuses_a_norm_that_is_not_a_positive_number():
    layer = _adaptive()
    public = layer.open_round(3, 4, SeededRandomness(0)).public
    for bad in (0.0, -1.0, float("inf"), float("nan"), True, "1.0", None):
        with pytest.raises(ValueError, match="norm"):
            layer.client_role(0, np.ones(4), {**public, "norm": bad}, SeededRandomness(1), {})


@settings(max_examples=30, deadline=None)
@given(data=st.binary(max_size=40))
def test_a_malformed_pair_is_refused_as_a_malformed_message(data):
    try:
        first, second = parse_pair(data, party="server", stage="s")
    except MalformedMessage:
        return
    assert encode_pair(first, second) == data


def test_a_client_sending_a_malformed_pair_is_left_out_and_the_round_goes_on():
    layer = _adaptive()
    x = np.random.default_rng(2).normal(size=(5, 8))

    def garble(src, dst, frame):
        return [frame[:-3]] if src == 3 else [frame]

    out = secure_sum(x, protocol=layer, seed=0, tamper=garble)
    assert 3 not in out.included and len(out.included) == 4
    assert any(isinstance(e, MalformedMessage) and e.party == "server" for e in out.rejected)


def test_a_part_for_a_protocol_without_that_stage_is_refused_and_the_other_part_still_counts():
    layer = _adaptive()
    x = np.random.default_rng(3).normal(size=(5, 8))
    sent = {"n": 0}

    def smuggle(src, dst, frame):  # client 2's first reply (advertise keys, a stage only the count has) carries an update part
        if src != 2:
            return [frame]
        sent["n"] += 1
        if sent["n"] > 1:
            return [frame]
        first, _ = parse_pair(frame, party="test", stage="test")
        return [encode_pair(first, b"junk")]

    out = secure_sum(x, protocol=layer, seed=0, tamper=smuggle)
    assert any(isinstance(e, MalformedMessage) and "does not have" in str(e) for e in out.rejected)
    assert 2 in out.included  # its count part was delivered: it stayed in both rounds
