"""Transform layers: rotation, discretization, noise, clipping, and the distributed-DP pipeline end to end."""

import math
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import DropoutSchedule, PlainSum, SecAggPlus, Stage, secure_sum
from protocols.accounting import Skellam, compose_epsilon, epsilon
from protocols.core.protocol import Protocol
from protocols.core.report import Cost, Guarantee, LayerReport, Output, ThreatModel
from protocols.layers import DiscreteEncode, DistributedNoise, L2Clip, RandomizedHadamard, choose_scale, distributed_dp, rounded_l2_bound
from protocols.layers.rotation import hadamard


@dataclass(frozen=True)
class FloatSum(Protocol):
    """A spy innermost layer: sums float rows of the clients the schedule keeps, and records what it got."""

    name: str = "float-sum"

    def run(self, inputs, dropouts, rng, transport):
        self.__dict__.setdefault("received", []).append(inputs.copy())
        kept = tuple(i for i in range(len(inputs)) if dropouts.active(i, Stage.MASKED_INPUT))
        g = Guarantee(threat_model=ThreatModel.NONE, server_learns="all", collusion="-", dropout_tolerance=0, exact=True)
        return Output(inputs[list(kept)].sum(axis=0), kept, (LayerReport(self.name, Cost.local(np.zeros(1), 0.0), g),))


@given(k=st.integers(0, 10), seed=st.integers(0, 2**32))
def test_hadamard_is_orthogonal_and_its_own_inverse(k, seed):
    x = np.random.default_rng(seed).normal(size=(3, 2**k))
    y = hadamard(x)
    assert np.allclose(np.linalg.norm(y, axis=1), np.linalg.norm(x, axis=1))
    assert np.allclose(hadamard(y), x)


def test_hadamard_refuses_other_lengths():
    with pytest.raises(ValueError, match="power of 2"):
        hadamard(np.zeros(6))


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 8), d=st.integers(1, 70), seed=st.integers(0, 2**32))
def test_rotation_layer_decodes_the_sum_and_flattens(n, d, seed):
    x = np.random.default_rng(seed).normal(size=(n, d))
    spy = FloatSum()
    out = secure_sum(x, protocol=RandomizedHadamard(spy), seed=seed)
    assert np.allclose(out.result, x.sum(axis=0))
    rotated = spy.received[0]
    assert rotated.shape[1] == 1 << max(0, (d - 1).bit_length())
    assert np.allclose(np.linalg.norm(rotated, axis=1), np.linalg.norm(x, axis=1))


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 10), d=st.integers(1, 64), bits=st.sampled_from([16, 20, 32]), seed=st.integers(0, 2**32))
def test_decode_of_sum_of_encodings_is_within_the_rounding_bound(n, d, bits, seed):
    x = np.random.default_rng(seed).normal(size=(n, d))
    x /= np.maximum(1.0, np.linalg.norm(x, axis=1, keepdims=True))
    scale = 2 ** (bits - 2) / (n * 2)
    out = secure_sum(x, protocol=DiscreteEncode(scale, 1.0, PlainSum(bits=bits)), seed=seed)
    assert np.max(np.abs(out.result - x.sum(axis=0))) <= n / scale + 1e-12


@settings(max_examples=30, deadline=None)
@given(d=st.integers(1, 200), c=st.floats(0.5, 1e3), seed=st.integers(0, 2**32))
def test_conditional_rounding_respects_its_l2_bound(d, c, seed):
    x = np.random.default_rng(seed).normal(size=(1, d))
    x *= c / np.linalg.norm(x)
    spy_ring = PlainSum(bits=40)
    layer = DiscreteEncode(1.0, c, spy_ring)
    out = secure_sum(x, protocol=layer, seed=seed)
    assert np.linalg.norm(out.result) <= rounded_l2_bound(c, d, layer.beta) + 1e-9


@pytest.mark.parametrize("shares", [20, 5])  # the noise planned for every participant, or for 5 survivors (all 20 then add a share)
def test_choose_scale_keeps_the_noisy_sum_in_range_and_refuses_what_cannot_fit(shares):
    n, d, clip, z, bits, beta = 20, 256, 1.0, 0.5, 16, 0.5
    scale = choose_scale(bits=bits, clients=n, dim=d, clip=clip, noise_multiplier=z, shares=shares, wrap_probability=1e-3, beta=beta)
    share_stddev = z * rounded_l2_bound(clip * scale, d, beta) / math.sqrt(shares)  # integer units, the recipes' share
    rng = np.random.default_rng(0)
    for _ in range(20):
        x = rng.normal(size=(n, d))
        x = hadamard(x / np.linalg.norm(x, axis=1, keepdims=True) * clip)
        total = x.sum(axis=0) * scale + rng.normal(scale=share_stddev, size=(n, d)).sum(axis=0)
        assert np.max(np.abs(total)) < 2 ** (bits - 1)
    with pytest.raises(ValueError, match="cannot hold"):
        choose_scale(bits=8, clients=1000, dim=10**6, clip=1.0, noise_multiplier=1.0)


def test_clip_bounds_norms_and_reports_how_many_were_clipped():
    x = np.array([[3.0, 4.0], [0.3, 0.4]])
    spy = FloatSum()
    out = secure_sum(x, protocol=L2Clip(1.0, spy), seed=0)
    assert np.allclose(spy.received[0], [[0.6, 0.8], [0.3, 0.4]])
    assert out.reports[-1].guarantee.parameters["clipped_clients"] == 1 and not out.reports[-1].guarantee.exact


def test_noise_accounts_only_for_the_shares_that_reached_the_output():
    n, d = 12, 16
    x = np.zeros((n, d), dtype=np.uint32)
    layer = DistributedNoise("skellam", 400.0, 10.0, 40.0, PlainSum(bits=32))
    full = secure_sum(x, protocol=layer, seed=1).reports[-1].guarantee
    dropped = secure_sum(x, protocol=layer, dropouts=DropoutSchedule({0: Stage.MASKED_INPUT, 1: Stage.MASKED_INPUT}), seed=1).reports[-1].guarantee
    assert full.dp_mechanism.clients == 12 and dropped.dp_mechanism.clients == 10
    assert dropped.epsilon > full.epsilon
    assert full.epsilon == pytest.approx(epsilon(full.dp_mechanism, steps=1, delta=1e-5))
    assert "cumulative_epsilon" not in dropped.parameters  # one cumulative number a run, per observer, from fl.privacy
    own = layer.share_mechanism()  # what an observer of one client's noisy input faces
    assert own.clients == 1 and own.local_mu == full.dp_mechanism.local_mu and epsilon(own, steps=1, delta=1e-5) > dropped.epsilon
    colluding = DistributedNoise("skellam", 400.0, 10.0, 40.0, PlainSum(bits=32), assume_colluding=12)
    one = DistributedNoise("skellam", 400.0, 10.0, 40.0, PlainSum(bits=32))
    secure_sum(x, protocol=one, seed=1)  # prepares d for its share mechanism
    # the colluders are the others: an honest client's own share is always in the sum, so one share counts (review 11)
    g = secure_sum(x, protocol=colluding, seed=1).reports[-1].guarantee
    assert g.parameters["counted_shares"] == 1 and g.dp_mechanism == one.share_mechanism() and g.epsilon < math.inf


@pytest.mark.parametrize("mechanism", ["skellam", "ddg"])
def test_noise_shares_sum_to_the_target_variance(mechanism):
    n, d = 10, 4000
    out = secure_sum(np.zeros((n, d), dtype=np.uint32), protocol=DistributedNoise(mechanism, 25.0, 1.0, 1.0, PlainSum(bits=32)), seed=3)
    signed = out.result.astype(np.int64)
    signed[signed >= 2**31] -= 2**32
    assert abs(signed.var() / (n * 25.0) - 1) < 0.08


def test_compose_epsilon_of_identical_rounds_equals_steps():
    m = Skellam(local_mu=200.0, clients=10, dim=64, l2_sensitivity=10.0, l1_sensitivity=80.0)
    assert compose_epsilon([m] * 7, delta=1e-5) == pytest.approx(epsilon(m, steps=7, delta=1e-5))


@pytest.mark.parametrize("mechanism", ["skellam", "ddg"])
def test_distributed_dp_pipeline_end_to_end_through_secagg_plus(mechanism):
    n, d, clip, z = 40, 300, 1.0, 0.3
    rng = np.random.default_rng(7)
    x = rng.normal(size=(n, d)) * 0.01
    x[0] *= 1000  # one large update gets clipped
    stack = distributed_dp(SecAggPlus.for_clients(n, bits=20), clients=n, dim=d, clip=clip, noise_multiplier=z, mechanism=mechanism)
    drops = DropoutSchedule({3: Stage.SHARE_KEYS, 4: Stage.UNMASKING})
    out = secure_sum(x, protocol=stack, dropouts=drops, seed=11)
    assert [r.layer for r in out.reports] == ["secagg+", "noise", "discretize", "rotation", "clip"]
    clipped = x / np.maximum(1.0, np.linalg.norm(x, axis=1, keepdims=True) / clip)
    error = out.result - clipped[list(out.included)].sum(axis=0)
    assert 0.7 * z * clip < error.std() < 1.3 * z * clip  # the noise that reached the output, in update units
    noise = out.reports[1].guarantee
    assert noise.dp_mechanism.clients == len(out.included) == n - 1 and 0 < noise.epsilon < math.inf


def test_dft_rotation_decodes_the_sum():
    from protocols.layers.rotation import RandomizedDFT

    x = np.random.default_rng(2).normal(size=(5, 37))
    spy = FloatSum()
    out = secure_sum(x, protocol=RandomizedDFT(spy), seed=2)
    assert np.allclose(out.result, x.sum(axis=0)) and spy.received[0].shape == (5, 38)


def test_rand_k_is_unbiased_and_aligned_across_clients():
    from protocols.layers.compression import RandK

    x = np.random.default_rng(3).normal(size=(6, 50))
    spy = FloatSum()
    estimates = [secure_sum(x, protocol=RandK(10, spy), seed=s).result for s in range(400)]
    assert spy.received[0].shape == (6, 10)
    assert np.allclose(np.mean(estimates, axis=0), x.sum(axis=0), atol=0.35 * np.abs(x.sum(axis=0)).max())
    kept = secure_sum(x, protocol=RandK(10, FloatSum()), seed=1).result != 0
    assert kept.sum() <= 10


def test_top_k_error_feedback_sends_everything_eventually():
    from protocols.layers.compression import TopK

    x = np.random.default_rng(4).normal(size=(3, 20))
    layer = TopK(5, FloatSum())
    total = sum(secure_sum(x if r == 0 else np.zeros_like(x), protocol=layer, seed=r).result for r in range(4))
    assert np.allclose(total, x.sum(axis=0))


@settings(max_examples=20, deadline=None)
@given(q=st.integers(2, 12), n=st.integers(1, 20), seed=st.integers(0, 2**32))
def test_stochastic_quantization_decodes_within_its_step(q, n, seed):
    from protocols.layers.compression import StochasticQuantize

    x = np.random.default_rng(seed).uniform(-1, 1, size=(n, 30))
    out = secure_sum(x, protocol=StochasticQuantize(q, 1.0, PlainSum(bits=q + 6)), seed=seed)
    step = 2 / (2**q - 1)
    assert np.max(np.abs(out.result - x.sum(axis=0))) <= n * step + 1e-9
    with pytest.raises(ValueError, match="needs >="):
        secure_sum(x, protocol=StochasticQuantize(q, 1.0, PlainSum(bits=q)), seed=seed)


def test_adaptive_clip_tracks_the_target_quantile_and_reports_the_count_query():
    from protocols.layers import AdaptiveClip

    n, d = 30, 8
    count = DistributedNoise("skellam", 0.5, 1.0, 1.0, SecAggPlus(n=n, k=8, t=5, bits=16))
    layer = AdaptiveClip(norm=0.1, target_quantile=0.5, learning_rate=0.5, count=count, inner=FloatSum())
    rng = np.random.default_rng(0)
    for r in range(40):
        x = rng.normal(size=(n, d))  # norms concentrate near sqrt(8) = 2.83
        out = secure_sum(x, protocol=layer, seed=r)
    median = np.median(np.linalg.norm(rng.normal(size=(10000, d)), axis=1))
    assert abs(layer.norm / median - 1) < 0.25
    g = out.reports[-1].guarantee
    assert isinstance(g.dp_mechanism, Skellam) and g.dp_mechanism.l2_sensitivity == 1.0 and 0 < g.epsilon < math.inf
    assert out.reports[-1].cost.bytes_up_mean > 0  # the count travelled through its own secure aggregation
    assert np.all(np.linalg.norm(out.result) <= n * out.reports[-1].guarantee.parameters["norm_used"] + 1e-9)
