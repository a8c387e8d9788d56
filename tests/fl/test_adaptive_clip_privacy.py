"""Adaptive clipping's noisy count is a query of its own: the round loop composes it with the update's noise
and never takes it for the update's. The adversary is the epsilon report: with a noisy count over an update
that carries no noise, a loop that read the first epsilon of the round would claim DP for a model trained
on unnoised updates."""

import math

from fl.experiment import ExperimentConfig, build_stack, run_experiment
from protocols import SecAgg
from protocols.layers import AdaptiveClip, DistributedNoise

COMMON = {"clients": 6, "rounds": 2, "noise_multiplier": 1.0, "seed": 0}


def adaptive(config, dim, initial=None, *, participants=None):
    count = DistributedNoise("skellam", 2.0, 1.0, 1.0, SecAgg(bits=16))
    return AdaptiveClip(norm=0.05, target_quantile=0.5, learning_rate=0.5, count=count, inner=build_stack(config, dim, initial, participants=participants))


def test_a_noisy_count_over_an_unnoised_update_claims_no_dp():
    result = run_experiment(ExperimentConfig(stack="secagg+", **COMMON), build=adaptive)
    count = next(rep for rep in result.rounds[-1].reports if rep.layer == "adaptive-clip")
    assert 0 < count.guarantee.epsilon < math.inf  # the count alone is DP ...
    for r in result.rounds:  # ... the model is not
        assert r.epsilon is None and r.cumulative_epsilon == math.inf
        assert all(e.epsilon == math.inf for e in r.epsilon_by_observer.values())


def test_the_count_is_composed_with_the_updates_noise():
    plain = run_experiment(ExperimentConfig(stack="ddp+secagg+", **COMMON))
    counted = run_experiment(ExperimentConfig(stack="ddp+secagg+", **COMMON), build=adaptive)
    assert [r.epsilon for r in counted.rounds] == [r.epsilon for r in plain.rounds]  # this round's update noise, the same
    for a, b in zip(plain.rounds, counted.rounds):
        assert math.isfinite(a.cumulative_epsilon) and b.cumulative_epsilon > a.cumulative_epsilon
