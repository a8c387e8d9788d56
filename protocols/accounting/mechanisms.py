"""Noise mechanisms as frozen data: what was added, in which units, with which sensitivity.

A layer *states* its mechanism; `protocols.accounting.epsilon` interprets it. Sensitivities and
noise are in the same units: update units for `Gaussian`, scaled integers (after x scale,
rotation and rounding, before mod 2**b) for the discrete mechanisms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class Gaussian:
    """Central Gaussian noise N(0, (noise_multiplier * l2_sensitivity)**2 I): RDP alpha / (2 z**2)."""

    noise_multiplier: float

    def __post_init__(self) -> None:
        if not self.noise_multiplier > 0:
            raise ValueError(f"noise_multiplier must be > 0, found {self.noise_multiplier}")


@dataclass(frozen=True, slots=True, kw_only=True)
class DistributedDiscreteGaussian:
    """Each of `clients` adds N_Z(0, local_stddev**2) per coordinate to a d-dimensional integer vector
    (Kairouz, Liu, Steinke, ICML 2021). The sum is not a discrete Gaussian; Proposition 14 bounds its
    RDP with the extra term tau = 10 sum_{k=1}^{n-1} exp(-2 pi**2 sigma**2 k / (k + 1))."""

    local_stddev: float
    clients: int
    dim: int
    l2_sensitivity: float
    l1_sensitivity: float

    def __post_init__(self) -> None:
        _positive(local_stddev=self.local_stddev, clients=self.clients, dim=self.dim, l2_sensitivity=self.l2_sensitivity,
                  l1_sensitivity=self.l1_sensitivity)

    @property
    def tau(self) -> float:
        return 10 * sum(math.exp(-2 * math.pi**2 * self.local_stddev**2 * k / (k + 1)) for k in range(1, self.clients))


@dataclass(frozen=True, slots=True, kw_only=True)
class Skellam:
    """Each of `clients` adds Sk(local_mu, local_mu) = Poisson(local_mu) - Poisson(local_mu) per coordinate
    (variance 2 local_mu); the sum is Sk(n mu, n mu) (Agarwal, Kairouz, Liu, NeurIPS 2021)."""

    local_mu: float
    clients: int
    dim: int
    l2_sensitivity: float
    l1_sensitivity: float

    def __post_init__(self) -> None:
        _positive(local_mu=self.local_mu, clients=self.clients, dim=self.dim, l2_sensitivity=self.l2_sensitivity,
                  l1_sensitivity=self.l1_sensitivity)


Mechanism = Gaussian | DistributedDiscreteGaussian | Skellam


def _positive(**values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{name} must be > 0, found {value}")
