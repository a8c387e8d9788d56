"""Renyi-DP curves of the mechanisms, Poisson subsampling, composition and conversion to (epsilon, delta).

The Gaussian goes through Google's `dp_accounting` (its RDP accountant, subsampling included); the
discrete mechanisms, which it lacks, are written here from their papers, and their curves are
converted with `dp_accounting.rdp.compute_epsilon`.
"""

from __future__ import annotations

import math

import dp_accounting
import numpy as np
from dp_accounting import rdp as dp_rdp
from scipy import special

from protocols.accounting.mechanisms import DistributedDiscreteGaussian, Gaussian, Mechanism, Skellam

ORDERS = tuple(range(2, 129)) + (256,)  # integer orders: the subsampling bound below needs them


def ddg_rdp(m: DistributedDiscreteGaussian, order: int) -> float:
    """Kairouz et al. 2021, Proposition 14, with l2 = Delta_2 / (sqrt(n) sigma), l1 = Delta_1 / (sqrt(n) sigma):
    min(a/2 l2**2 + tau d, a/2 (l2**2 + 2 l1 tau + tau**2 d), a/2 (l2 + sqrt(d) tau)**2)."""
    central = math.sqrt(m.clients) * m.local_stddev
    l2, l1, tau, d = m.l2_sensitivity / central, m.l1_sensitivity / central, m.tau, m.dim
    return min(
        order / 2 * l2**2 + tau * d,
        order / 2 * (l2**2 + 2 * l1 * tau + tau**2 * d),
        order / 2 * (l2 + math.sqrt(d) * tau) ** 2,
    )


def skellam_rdp(m: Skellam, order: int) -> float:
    """Agarwal et al. 2021 (Skellam mechanism), for aggregate noise Sk(mu, mu), mu = n * local_mu:
    a Delta_2**2 / (4 mu) + min(((2a - 1) Delta_2**2 + 6 Delta_1) / (16 mu**2), 3 Delta_1 / (4 mu))."""
    mu = m.clients * m.local_mu
    d2, d1 = m.l2_sensitivity**2, m.l1_sensitivity
    return order * d2 / (4 * mu) + min(((2 * order - 1) * d2 + 6 * d1) / (16 * mu**2), 3 * d1 / (4 * mu))


def subsampled_rdp(rdp_at, order: int, q: float) -> float:
    """Poisson subsampling at rate q of a mechanism with RDP curve `rdp_at` (Zhu and Wang, ICML 2019,
    Theorem 6, integer order a >= 2):
    (1/(a-1)) log[(1-q)**(a-1) (a q - q + 1) + C(a,2) q**2 (1-q)**(a-2) e**eps(2)
                  + 3 sum_{l=3}^a C(a,l) (1-q)**(a-l) q**l e**((l-1) eps(l))], in log space."""
    if q == 1.0:
        return rdp_at(order)
    a = order
    logs = [(a - 1) * math.log1p(-q) + math.log(a * q - q + 1)]
    logs.append(math.log(special.comb(a, 2)) + 2 * math.log(q) + (a - 2) * math.log1p(-q) + rdp_at(2))
    for ell in range(3, a + 1):
        logs.append(math.log(3) + math.log(special.comb(a, ell)) + (a - ell) * math.log1p(-q) + ell * math.log(q) + (ell - 1) * rdp_at(ell))
    top = max(logs)
    return min(rdp_at(a), (top + math.log(sum(math.exp(v - top) for v in logs))) / (a - 1))


def rdp_curve(mechanism: DistributedDiscreteGaussian | Skellam, *, steps: int, sampling_rate: float) -> np.ndarray:
    """RDP at each of ORDERS after `steps` rounds, each Poisson-sampling clients at `sampling_rate`."""
    if isinstance(mechanism, DistributedDiscreteGaussian):
        single = lambda a: ddg_rdp(mechanism, a)  # noqa: E731
    elif isinstance(mechanism, Skellam):
        single = lambda a: skellam_rdp(mechanism, a)  # noqa: E731
    else:
        raise TypeError(f"no RDP curve for {type(mechanism).__name__}")
    return steps * np.array([subsampled_rdp(single, a, sampling_rate) for a in ORDERS])


def gaussian_epsilon(mechanism: Gaussian, *, steps: int, sampling_rate: float, delta: float) -> float:
    """dp_accounting's RDP accountant (its default orders) on (Poisson-sampled) Gaussian events composed `steps` times."""
    accountant = dp_rdp.RdpAccountant()
    event = dp_accounting.GaussianDpEvent(mechanism.noise_multiplier)
    if sampling_rate < 1.0:
        event = dp_accounting.PoissonSampledDpEvent(sampling_rate, event)
    return accountant.compose(event, steps).get_epsilon(delta)


def epsilon(mechanism: Mechanism, *, steps: int, sampling_rate: float = 1.0, delta: float) -> float:
    """(epsilon, delta)-DP of `steps` rounds of `mechanism`, each sampling clients with probability `sampling_rate`.

    Raises:
        ValueError: for steps < 1, sampling_rate outside (0, 1] or delta outside (0, 1).
    """
    if steps < 1 or not 0.0 < sampling_rate <= 1.0 or not 0.0 < delta < 1.0:
        raise ValueError(f"need steps >= 1, 0 < sampling_rate <= 1, 0 < delta < 1; found {steps}, {sampling_rate}, {delta}")
    if isinstance(mechanism, Gaussian):
        return gaussian_epsilon(mechanism, steps=steps, sampling_rate=sampling_rate, delta=delta)
    return dp_rdp.compute_epsilon(ORDERS, rdp_curve(mechanism, steps=steps, sampling_rate=sampling_rate), delta)[0]


def compose_epsilon(mechanisms: list[Mechanism], *, sampling_rate: float = 1.0, delta: float) -> float:
    """(epsilon, delta) of running the given per-round mechanisms one after another (their RDP curves add
    up at every order). Rounds may differ, e.g. in how many clients' noise reached the output.
    Gaussian rounds use their closed form alpha / (2 z**2) here, so that all curves share ORDERS."""
    if not mechanisms:
        return 0.0
    total = np.zeros(len(ORDERS))
    for m in mechanisms:
        if isinstance(m, Gaussian):
            single = lambda a, z=m.noise_multiplier: a / (2 * z**2)  # noqa: E731
            total += np.array([subsampled_rdp(single, a, sampling_rate) for a in ORDERS])
        else:
            total += rdp_curve(m, steps=1, sampling_rate=sampling_rate)
    return dp_rdp.compute_epsilon(ORDERS, total, delta)[0]


def calibrate(make, target_epsilon: float, *, steps: int, sampling_rate: float = 1.0, delta: float, low: float = 1e-3, high: float = 1e6) -> float:
    """Smallest noise parameter p in [low, high] (to 0.1%) with epsilon(make(p), ...) <= target_epsilon.

    `make(p)` builds the mechanism for noise parameter p (noise multiplier, local stddev, local mu);
    epsilon decreases as p grows.

    Raises:
        ValueError: if even `high` does not reach the target.
    """
    eps = lambda p: epsilon(make(p), steps=steps, sampling_rate=sampling_rate, delta=delta)  # noqa: E731
    if eps(high) > target_epsilon:
        raise ValueError(f"epsilon {target_epsilon} is out of reach even with noise parameter {high}")
    while high / low > 1.001:
        mid = math.sqrt(low * high)
        if eps(mid) <= target_epsilon:
            high = mid
        else:
            low = mid
    return high
