"""Review 12 (1), found by the stack fuzzer's warnings ('invalid value encountered in cast' in protocols/dp/samplers.py): the
distributed-noise recipe sizes the Skellam share to the ring, and in a wide ring, or in the default 32-bit one with few
participants, mu = local_variance / 2 passes 2**53 (PTRS computes k in float64: every sample is even, the variance is off)
and then 2**63 (k overflows int64: every share is 0). The layer still reports its epsilon for the noise it did not add.
Attack: an observer of the released sum of zero inputs checks the noise is there and has the parity it should. Fixed:
the recipe keeps a share's variance within MAX_SHARE_VARIANCE = 2**33 (lowering the scale), and the samplers refuse
means beyond their exact float64 range."""

import math

import numpy as np
import pytest

import protocols  # noqa: F401  registers every layer
from protocols import secure_sum
from protocols.core.stack import StackContext, build, parse
from protocols.dp.samplers import skellam
from protocols.layers.noise import DistributedNoise
from secagg.randomness import SeededRandomness

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def _noise_layer(protocol) -> DistributedNoise:
    while not isinstance(protocol, DistributedNoise):
        protocol = protocol.inner
    return protocol


def _stack(text: str, dim: int, n: int):
    return build(parse(text), StackContext(dim=dim, participants=n))


def test_a_wide_ring_recipe_adds_the_noise_it_accounts_for():
    stack = _stack("clip(bound=1) > skellam(noise_multiplier=1) > secagg+(bits=40)", 64, 6)
    out = secure_sum(np.zeros((6, 64), dtype=np.float32), protocol=stack, seed=1)
    eps = next(r.guarantee.epsilon for r in out.reports if "local_variance" in r.guarantee.parameters)
    assert math.isfinite(eps)
    assert float(np.std(out.result)) > 0, "no noise reached the released sum"


@pytest.mark.parametrize("n", [6, 100])
def test_the_default_recipe_samples_the_skellam_it_accounts_for(n):
    mu = _noise_layer(_stack("clip(bound=1) > skellam(noise_multiplier=1) > secagg+", 64, n)).local_variance / 2
    s = skellam(SeededRandomness(3), 40000, mu)
    assert 0.45 < float(np.mean(s % 2 != 0)) < 0.55, "parity"
    assert 0.95 < float(s.astype(np.float64).var()) / (2 * mu) < 1.05, "variance"


@pytest.mark.parametrize("mu", [1e6, 2.0**32])
def test_control_the_sampler_is_skellam_where_float64_holds_the_log_pmf(mu):
    s = skellam(SeededRandomness(3), 40000, mu)
    assert 0.45 < float(np.mean(s % 2 != 0)) < 0.55
    assert 0.95 < float(s.astype(np.float64).var()) / (2 * mu) < 1.05


def test_control_a_36_bit_ring_still_adds_noise():
    stack = _stack("clip(bound=1) > skellam(noise_multiplier=1) > secagg+(bits=36)", 64, 6)
    assert float(np.std(secure_sum(np.zeros((6, 64), dtype=np.float32), protocol=stack, seed=1).result)) > 0


def test_the_samplers_refuse_what_float64_cannot_draw():
    from protocols.dp.samplers import MAX_GAUSSIAN_SIGMA, MAX_POISSON_MEAN, discrete_gaussian, poisson

    with pytest.raises(ValueError, match="lam must be in"):
        poisson(SeededRandomness(1), 4, MAX_POISSON_MEAN * 2)
    with pytest.raises(ValueError, match="sigma must be in"):
        discrete_gaussian(SeededRandomness(1), 4, MAX_GAUSSIAN_SIGMA * 2)


@pytest.mark.parametrize("bits", [32, 40, 62])
def test_the_recipe_keeps_each_share_within_the_samplers_range(bits):
    from protocols.dp.samplers import MAX_SHARE_VARIANCE

    layer = _noise_layer(_stack(f"clip(bound=1) > skellam(noise_multiplier=1) > secagg+(bits={bits})", 64, 6))
    assert layer.local_variance <= MAX_SHARE_VARIANCE
