"""Review round 2 (issue 15): the sampling rate the released model's amplification is stated with.

Claim (fl/experiment.py, fl/privacy.released_sampling): under fixed-size sampling the released model's epsilon
is amplified by sampling without replacement at q = participants / clients. An honest client's epsilon is
only amplified by the probability that *it* is sampled. `draw_round` puts exactly `attackers_per_round`
Byzantine clients in every round, so an honest client fills one of m - a slots among N - b honest clients:
its inclusion probability is (m - a) / (N - b), which exceeds m / N whenever a / m < b / N (floors differ).
"""

import numpy as np
import pytest

from fl.adversaries import draw_round
from fl.experiment import ExperimentConfig, _epsilon_by_observer, _sampling_rate
from fl.privacy import RoundNoise, epsilon_by_observer
from protocols.accounting import Gaussian, compose_epsilon


def _used_rate(cfg: ExperimentConfig) -> float:
    return _sampling_rate(cfg)  # what _epsilon_by_observer passes (before the fix: min(1, m / N))


@pytest.mark.parametrize("clients, fraction, byzantine", [(100, 0.1, 0.25), (10, 0.5, 0.3), (20, 0.25, 0.1), (100, 0.1, 0.0)])
def test_released_amplification_rate_at_least_an_honest_clients_inclusion_probability(clients, fraction, byzantine):
    cfg = ExperimentConfig(clients=clients, sample_fraction=fraction, byzantine=byzantine, stack="ddp+secagg+", mechanism="skellam")
    m, a, b = cfg.participants, cfg.attackers_per_round, cfg.byzantine_clients
    honest_rate = (m - a) / (clients - b)
    # the same probability measured on the sampler the experiment uses
    rng = np.random.default_rng(0)
    target = next(i for i in range(clients) if i >= b)  # roles are a permutation; any non-Byzantine id of this toy population
    hits = sum(target in draw_round(rng, clients, m, np.arange(b), a) for _ in range(4000))
    assert abs(hits / 4000 - honest_rate) < 0.03
    assert _used_rate(cfg) >= honest_rate - 1e-12, (
        f"amplified at q = m/N = {_used_rate(cfg):.4f}, an honest client is sampled with probability {honest_rate:.4f}")


def test_released_epsilon_not_below_the_bound_at_the_honest_rate():
    """The consequence in the reported number: 40 rounds of z = 1 Gaussian noise, N = 100, m = 10, 25% Byzantine."""
    cfg = ExperimentConfig(clients=100, sample_fraction=0.1, byzantine=0.25, stack="secagg+")
    m, a, b = cfg.participants, cfg.attackers_per_round, cfg.byzantine_clients
    rounds = [RoundNoise(Gaussian(noise_multiplier=1.0), None)] * 40
    reported = epsilon_by_observer("ddp+secagg+", rounds, delta=1e-5, participation="fixed", sampling_rate=_used_rate(cfg),
                                   byzantine_clients=b)["released model"].epsilon
    at_honest_rate = compose_epsilon([Gaussian(noise_multiplier=1.0)] * 40, delta=1e-5, sampling_rate=(m - a) / (100 - b),
                                     sampling="without_replacement")
    through_experiment = _epsilon_by_observer(cfg, rounds, 40, 1.0)["released model"]  # the rate the experiment passes
    assert through_experiment.epsilon >= min(at_honest_rate, compose_epsilon([Gaussian(noise_multiplier=1.0)] * 40, delta=1e-5)) - 1e-9
    assert f"{(m - a) / (100 - b):g}" in through_experiment.assumptions
    assert reported >= min(at_honest_rate, compose_epsilon([Gaussian(noise_multiplier=1.0)] * 40, delta=1e-5)) - 1e-9
