"""Exact references the accounting tests compare against: Renyi divergences of pmfs in log space, the
discrete Gaussian pmf, and the exact (epsilon, delta) of a pair of Gaussians."""

import math

import numpy as np
from scipy import optimize, special, stats


def renyi(log_p: np.ndarray, log_q: np.ndarray, order: int) -> float:
    """D_a(p || q) = 1/(a-1) log sum exp(a log p + (1-a) log q), in log space over the points where both are
    representable (the tails left out contribute below float64 resolution)."""
    keep = np.isfinite(log_p) & np.isfinite(log_q) & (log_p > -700) & (log_q > -700)
    return float(special.logsumexp(order * log_p[keep] + (1 - order) * log_q[keep]) / (order - 1))


def discrete_gaussian_pmf(support: np.ndarray, sigma: float) -> np.ndarray:
    log_w = -(support.astype(float) ** 2) / (2 * sigma**2)
    return np.exp(log_w - special.logsumexp(log_w))


def gaussian_pair_epsilon(mu: float, delta: float) -> float:
    """Exact epsilon of N(0, 1) vs N(mu, 1) at delta (Balle and Wang 2018):
    delta(eps) = Phi(mu/2 - eps/mu) - e**eps Phi(-mu/2 - eps/mu)."""
    d = lambda eps: stats.norm.cdf(mu / 2 - eps / mu) - math.exp(eps + stats.norm.logcdf(-mu / 2 - eps / mu)) - delta  # noqa: E731
    return 0.0 if d(0.0) <= 0 else optimize.brentq(d, 0.0, mu**2 + 50 * mu + 10)
