"""Review round 2 (issue 15): RDP -> (epsilon, delta) and the Gaussian epsilons, against exact references.

Claims (protocols/accounting/rdp.py, accountant.py): every epsilon is an upper bound. References computed
independently: the exact (epsilon, delta) curve of T composed Gaussians (a Gaussian of mu = sqrt(T) / z,
Balle-Wang: delta(eps) = Phi(-eps/mu + mu/2) - e**eps Phi(-eps/mu - mu/2)), and, for Poisson-subsampled
Gaussians, dp-accounting's PLD accountant with its *optimistic* discretization (a lower bound on the truth).
"""

import math

import pytest
from dp_accounting.pld import privacy_loss_distribution
from scipy import optimize, stats

from protocols.accounting import Gaussian, compose_epsilon, epsilon, tightest_epsilon


def exact_gaussian_epsilon(mu: float, delta: float) -> float:
    f = lambda e: stats.norm.cdf(-e / mu + mu / 2) - math.exp(e) * stats.norm.cdf(-e / mu - mu / 2) - delta  # noqa: E731
    return optimize.brentq(f, 0.0, 500.0, xtol=1e-10)


@pytest.mark.parametrize("z, steps, delta", [(0.5, 1, 1e-5), (1.0, 20, 1e-5), (2.0, 100, 1e-6), (0.8, 3, 1e-3), (5.0, 1000, 1e-5)])
def test_unsampled_gaussian_epsilon_not_below_exact(z, steps, delta):
    exact = exact_gaussian_epsilon(math.sqrt(steps) / z, delta)
    m = Gaussian(noise_multiplier=z)
    for reported in (epsilon(m, steps=steps, delta=delta), compose_epsilon([m] * steps, delta=delta),
                     tightest_epsilon([m] * steps, delta=delta).value):
        assert reported >= exact * (1 - 1e-4), f"reported {reported} < exact {exact}"


@pytest.mark.parametrize("z, q, steps", [(1.0, 0.01, 200), (0.8, 0.1, 50), (2.0, 0.3, 40), (0.6, 0.05, 10)])
def test_subsampled_gaussian_epsilon_not_below_optimistic_pld(z, q, steps):
    delta = 1e-5
    pld = privacy_loss_distribution.from_gaussian_mechanism(z, pessimistic_estimate=False, value_discretization_interval=1e-3, sampling_prob=q)
    lower = pld.self_compose(steps).get_epsilon_for_delta(delta)
    m = Gaussian(noise_multiplier=z)
    for reported in (compose_epsilon([m] * steps, sampling_rate=q, delta=delta), epsilon(m, steps=steps, sampling_rate=q, delta=delta),
                     tightest_epsilon([m] * steps, sampling_rate=q, delta=delta).value):
        assert reported >= lower * (1 - 1e-3), f"reported {reported} < optimistic PLD {lower}"
