"""Review 13 (1): the samplers after review 12's caps (MAX_POISSON_MEAN = 2**32, MAX_GAUSSIAN_SIGMA = 2**48). Attack: is the
noise inside the allowed range distributed as the accountant assumes, at the cap and at the recipes' largest share
(variance MAX_SHARE_VARIANCE = 2**33)? Binned chi-square against the exact CDF (fixed seeds: deterministic), parity and
residues mod 8, tails. Holds (the existing pmf tests stop at lam = 1000, sigma = 17; review 12 checked only
parity and variance at the cap). Break: a discrete Gaussian of sigma whose square underflows never returns (strict xfail)."""

import math

import numpy as np
import pytest
from scipy import stats

from protocols.dp import samplers
from protocols.dp.samplers import MAX_GAUSSIAN_SIGMA, MAX_POISSON_MEAN, MAX_SHARE_VARIANCE, discrete_gaussian, poisson
from secagg import SeededRandomness

N = 200_000


def _binned_pvalue(x: np.ndarray, cdf, centre: float, sd: float) -> float:
    """Chi-square over 40 bins of sd / 5 across centre +- 4 sd (two tail bins), expected counts from the exact `cdf`; the
    edges are half-integers, so a discrete cdf is read exactly."""
    edges = np.floor(centre + sd * np.linspace(-4, 4, 41)) + 0.5
    observed = np.histogram(x.astype(np.float64), bins=np.concatenate([[-np.inf], edges, [np.inf]]))[0]
    expected = np.diff(np.concatenate([[0.0], cdf(edges), [1.0]])) * len(x)
    return stats.chisquare(observed, expected).pvalue


@pytest.mark.parametrize("lam", [MAX_POISSON_MEAN, MAX_SHARE_VARIANCE / 4, 12.0])
def test_poisson_at_the_cap_fits_the_exact_pmf(lam):
    x = poisson(SeededRandomness(7), N, lam)
    sd = math.sqrt(lam)
    assert abs(x.mean() - lam) < 5 * sd / math.sqrt(N)
    assert abs(x.astype(np.float64).var() / lam - 1) < 5 * math.sqrt(2 / N)
    assert abs(float(np.mean(x % 2)) - 0.5) < 5 * 0.5 / math.sqrt(N), "parity"
    if lam > 100:  # at 12 the bins are wider than the support's steps: the small-lam pmf test in test_samplers covers it
        assert _binned_pvalue(x, lambda e: stats.poisson.cdf(np.floor(e), lam), lam, sd) > 1e-4


@pytest.mark.parametrize("sigma", [math.sqrt(MAX_SHARE_VARIANCE), MAX_GAUSSIAN_SIGMA])
def test_discrete_gaussian_at_the_recipes_largest_share_and_at_the_cap_fits_the_gaussian(sigma):
    """At sigma >= 2**16 the discrete Gaussian's CDF at half-integers equals the continuous one to ~exp(-2 pi**2 sigma**2)."""
    x = discrete_gaussian(SeededRandomness(8), N, sigma)
    assert _binned_pvalue(x, lambda e: stats.norm.cdf(e / sigma), 0.0, sigma) > 1e-4
    assert stats.chisquare(np.bincount(x % 8, minlength=8)).pvalue > 1e-4, "residues mod 8 (the low bits a ring sum keeps)"
    tail = float(np.mean(np.abs(x) > 3 * sigma))
    assert abs(tail - 2 * stats.norm.sf(3)) < 5 * math.sqrt(2 * stats.norm.sf(3) / N)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # nan and inf in its acceptance test
def test_a_discrete_gaussian_whose_variance_underflows_returns_or_refuses(monkeypatch):
    """Was a break (review 13): a sigma whose square underflows looped forever; it is refused."""
    calls, real = [0], samplers.uniform

    def counted(rng, size):  # stops the loop: 1000 rejection rounds draw far more than the ~4 a round of 4 samples needs
        calls[0] += 1
        if calls[0] > 3000:
            raise RuntimeError("no proposal accepted in 1000 rounds")
        return real(rng, size)

    monkeypatch.setattr(samplers, "uniform", counted)
    try:
        x = discrete_gaussian(SeededRandomness(1), 4, 1e-200)
    except ValueError:
        return  # refused: fixed
    assert np.array_equal(x, np.zeros(4)), "N_Z(0, 1e-400) is 0 but with probability ~0"


def test_control_the_smallest_sigma_whose_square_is_normal_returns_zeros():
    assert np.array_equal(discrete_gaussian(SeededRandomness(1), 4, 1e-150), np.zeros(4))
