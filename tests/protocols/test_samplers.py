"""Noise samplers: moments and tails against the target distributions (fixed seeds)."""

import numpy as np
import pytest
from scipy import stats

from protocols.dp.samplers import discrete_gaussian, discrete_laplace, poisson, skellam
from secagg import SeededRandomness


def _chi2_pvalue(samples: np.ndarray, pmf, lo: int, hi: int) -> float:
    """Chi-square goodness of fit on [lo, hi] with both tails pooled into the end bins."""
    values = np.clip(samples, lo, hi)
    observed = np.bincount(values - lo, minlength=hi - lo + 1)
    support = np.arange(lo, hi + 1)
    expected = pmf(support)
    expected[0] += pmf(np.arange(lo - 2000, lo)).sum()
    expected[-1] += pmf(np.arange(hi + 1, hi + 2000)).sum()
    expected = expected / expected.sum() * len(samples)
    keep = expected > 5
    return stats.chisquare(observed[keep], expected[keep] * observed[keep].sum() / expected[keep].sum()).pvalue


def _dg_pmf(sigma):
    norm = np.exp(-(np.arange(-4000, 4001) ** 2) / (2 * sigma**2)).sum()
    return lambda y: np.exp(-(y.astype(float) ** 2) / (2 * sigma**2)) / norm


@pytest.mark.parametrize("lam", [0.3, 4.0, 9.9, 10.0, 37.5, 1000.0])
def test_poisson_fits_its_pmf(lam):
    x = poisson(SeededRandomness(int(lam * 10)), 100_000, lam)
    sd = np.sqrt(lam)
    assert abs(x.mean() - lam) < 5 * sd / np.sqrt(len(x))
    assert _chi2_pvalue(x, lambda k: stats.poisson.pmf(k, lam), max(0, int(lam - 4 * sd)), int(lam + 4 * sd) + 1) > 1e-4


@pytest.mark.parametrize("sigma", [0.3, 1.0, 2.5, 17.0])
def test_discrete_gaussian_fits_its_pmf(sigma):
    x = discrete_gaussian(SeededRandomness(int(sigma * 100)), 100_000, sigma)
    bound = int(4 * sigma) + 1
    assert _chi2_pvalue(x, _dg_pmf(sigma), -bound, bound) > 1e-4
    assert abs(x.mean()) < 5 * sigma / np.sqrt(len(x)) + 1e-3


@pytest.mark.parametrize("mu", [0.5, 6.0, 250.0])
def test_skellam_fits_its_pmf(mu):
    x = skellam(SeededRandomness(int(mu * 7)), 100_000, mu)
    assert abs(x.var() / (2 * mu) - 1) < 0.03
    bound = int(4 * np.sqrt(2 * mu)) + 1
    assert _chi2_pvalue(x, lambda k: stats.skellam.pmf(k, mu, mu), -bound, bound) > 1e-4


def test_discrete_laplace_tail():
    x = discrete_laplace(SeededRandomness(5), 200_000, 3.0)
    q = np.exp(-1 / 3.0)
    # P[|Y| >= 10] = 2 q**10 / (1 + q)
    assert abs((np.abs(x) >= 10).mean() - 2 * q**10 / (1 + q)) < 0.005


def test_samplers_are_reproducible_from_a_seed_and_refuse_bad_parameters():
    assert np.array_equal(skellam(SeededRandomness(1), 50, 30.0), skellam(SeededRandomness(1), 50, 30.0))
    with pytest.raises(ValueError):
        discrete_gaussian(SeededRandomness(1), 3, 0.0)
    with pytest.raises(ValueError):
        poisson(SeededRandomness(1), 3, -1.0)
