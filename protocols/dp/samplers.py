"""Integer noise samplers driven by a `Randomness` (the OS CSPRNG for real data, a seed in simulation).

No floating-point Gaussian is rounded. Every sampler turns uniform 53-bit floats from the random
source into integers by inversion or rejection; the only floating-point step is evaluating an
acceptance probability or a CDF in float64, never the noise value itself. That evaluation is accurate only in a
range: PTRS's log-pmf -lam + k log(lam) - lgamma(k + 1) cancels terms of size ~lam log(lam), so its absolute error
grows with lam (about 1e-5 at lam = 2**32, about 1 at 1e16, where every sample is also even; review 12), and the
discrete Laplace proposal's values must stay below 2**53. So `poisson` (and `skellam`) refuse lam above
MAX_POISSON_MEAN = 2**32 and `discrete_gaussian` sigma above MAX_GAUSSIAN_SIGMA = 2**48; the distributed-noise
recipe keeps a share's variance within `max_share_variance` (2**33 for Skellam, 2**96 for the discrete Gaussian;
`protocols.layers.recipes`).

- discrete Gaussian N_Z(0, sigma**2): rejection from a discrete Laplace proposal (Canonne, Kamath,
  Steinke, NeurIPS 2020, Algorithm 3), all rows of a batch in parallel;
- Skellam Sk(mu, mu) = Poisson(mu) - Poisson(mu), Poisson by inversion for mu < 10 and by
  Hörmann's transformed rejection (PTRS, 1993) otherwise.

`gaussian` is the one floating-point sampler, for layers whose values are floats anyway (CKKS
inputs); its float output carries the usual caveat of floating-point noise (Mironov, CCS 2012).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from secagg.randomness import Randomness

_INVERSION_LIMIT = 10.0
MAX_POISSON_MEAN = 2.0**32  # PTRS's float64 log-pmf is accurate to ~1e-5 up to here (see the module docstring)
MAX_SHARE_VARIANCE = 2 * MAX_POISSON_MEAN  # of a Skellam noise share the recipes size (2 mu)
MAX_GAUSSIAN_SIGMA = 2.0**48  # discrete Laplace proposals of |y| < 2**53 (16 sigma), exact integers in float64


def max_share_variance(mechanism: str) -> float:
    """The largest variance of a noise share `mechanism` ("skellam" or "ddg") draws exactly: 2 MAX_POISSON_MEAN for a
    Skellam share (two Poisson draws), MAX_GAUSSIAN_SIGMA**2 for a discrete Gaussian one (review 13: ddg had Skellam's cap)."""
    limits = {"skellam": MAX_SHARE_VARIANCE, "ddg": MAX_GAUSSIAN_SIGMA**2}
    if mechanism not in limits:
        raise ValueError(f"mechanism must be one of {tuple(limits)}, found {mechanism!r}")
    return limits[mechanism]


def uniform(rng: Randomness, size: int) -> np.ndarray:
    """`size` floats uniform on [0, 1) with 53 random bits each."""
    return (rng.uint64(size) >> np.uint64(11)).astype(np.float64) * 2.0**-53


def gaussian(rng: Randomness, size: int, sigma: float) -> np.ndarray:
    """`size` samples of N(0, sigma**2) in float64, by Box-Muller from 53-bit uniforms (no proposals: any finite sigma)."""
    if not 0 < sigma < math.inf:
        raise ValueError(f"sigma must be positive and finite, found {sigma}")
    half = (size + 1) // 2
    u1, u2 = 1.0 - uniform(rng, half), uniform(rng, half)
    radius = np.sqrt(-2.0 * np.log(u1))
    return sigma * np.concatenate([radius * np.cos(2 * np.pi * u2), radius * np.sin(2 * np.pi * u2)])[:size]


def _geometric(rng: Randomness, size: int, log_q: float) -> np.ndarray:
    """Geometric on {0, 1, ...} with P[k] = (1 - q) q**k, by inversion: floor(log(U') / log q), U' in (0, 1]."""
    u = 1.0 - uniform(rng, size)
    return np.floor(np.log(u) / log_q).astype(np.int64)


def discrete_laplace(rng: Randomness, size: int, t: float) -> np.ndarray:
    """P[y] proportional to exp(-|y| / t): the difference of two geometrics with q = exp(-1/t)."""
    log_q = -1.0 / t
    return _geometric(rng, size, log_q) - _geometric(rng, size, log_q)


def discrete_gaussian(rng: Randomness, size: int, sigma: float) -> np.ndarray:
    """`size` samples of N_Z(0, sigma**2): P[y] proportional to exp(-y**2 / (2 sigma**2)).

    Proposal Y ~ discrete Laplace with t = floor(sigma) + 1, accepted with probability
    exp(-(|Y| - sigma**2 / t)**2 / (2 sigma**2)); expected acceptance is about 1/2 or better.
    """
    if not 0 < sigma <= MAX_GAUSSIAN_SIGMA or not sigma * sigma > 0:  # sigma**2 == 0 (sigma < ~1.5e-162): every acceptance nan or 0
        raise ValueError(f"sigma must be in (0, 2**48] with sigma**2 > 0 in float64 (the acceptance divides by it), found {sigma}")
    t = math.floor(sigma) + 1
    out = np.empty(size, dtype=np.int64)
    todo = np.arange(size)
    while todo.size:
        y = discrete_laplace(rng, todo.size, t)
        accept = uniform(rng, todo.size) < np.exp(-((np.abs(y) - sigma**2 / t) ** 2) / (2 * sigma**2))
        out[todo[accept]] = y[accept]
        todo = todo[~accept]
    return out


def poisson(rng: Randomness, size: int, lam: float) -> np.ndarray:
    """`size` samples of Poisson(lam)."""
    if not 0 <= lam <= MAX_POISSON_MEAN:
        raise ValueError(f"lam must be in [0, 2**32] (PTRS's float64 log-pmf), found {lam}")
    if lam == 0:
        return np.zeros(size, dtype=np.int64)
    if lam < _INVERSION_LIMIT:
        support = np.arange(0, int(lam + 40 * math.sqrt(lam) + 40))
        cdf = np.cumsum(np.exp(support * math.log(lam) - lam - special.gammaln(support + 1)))
        return np.minimum(np.searchsorted(cdf, uniform(rng, size), side="right"), support[-1]).astype(np.int64)
    return _ptrs(rng, size, lam)


def _ptrs(rng: Randomness, size: int, lam: float) -> np.ndarray:
    """Hörmann's PTRS for lam >= 10: a transformed-rejection proposal with an exact log-pmf acceptance test."""
    slam, loglam = math.sqrt(lam), math.log(lam)
    b = 0.931 + 2.53 * slam
    a = -0.059 + 0.02483 * b
    inv_alpha = 1.1239 + 1.1328 / (b - 3.4)
    v_r = 0.9277 - 3.6224 / (b - 2)
    out = np.empty(size, dtype=np.int64)
    todo = np.arange(size)
    while todo.size:
        u = uniform(rng, todo.size) - 0.5
        v = uniform(rng, todo.size)
        us = 0.5 - np.abs(u)
        k = np.floor((2 * a / np.maximum(us, 1e-300) + b) * u + lam + 0.43)
        quick = (us >= 0.07) & (v <= v_r)
        possible = (k >= 0) & ~((us < 0.013) & (v > us))
        with np.errstate(divide="ignore"):
            lhs = np.log(np.maximum(v, 1e-300)) + math.log(inv_alpha) - np.log(a / np.maximum(us, 1e-300) ** 2 + b)
        rhs = -lam + k * loglam - special.gammaln(np.maximum(k, 0) + 1)
        accept = quick | (possible & (lhs <= rhs))
        out[todo[accept]] = k[accept].astype(np.int64)
        todo = todo[~accept]
    return out


def skellam(rng: Randomness, size: int, mu: float) -> np.ndarray:
    """`size` samples of Sk(mu, mu) = Poisson(mu) - Poisson(mu): mean 0, variance 2 mu."""
    return poisson(rng, size, mu) - poisson(rng, size, mu)
