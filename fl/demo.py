"""The secure-aggregation demo: float updates of n simulated clients, fixed-point encoded, summed
by a protocol under random dropouts, decoded, and compared with the plaintext sum."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from protocols import DropoutSchedule, Output, PlainSum, Protocol, SecAgg, SecAggPlus, secure_sum
from secagg import FixedPoint, Ring, SeededRandomness

PROTOCOLS = ("secagg+", "secagg", "plain")


@dataclass(frozen=True)
class DemoConfig:
    clients: int = 100
    dim: int = 10_000
    dropout: float = 0.1
    protocol: str = "secagg+"
    bits: int = 32
    active: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if self.clients < 3:
            raise ValueError(f"clients must be >= 3, found {self.clients}")
        if self.dim < 1:
            raise ValueError(f"dim must be >= 1, found {self.dim}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), found {self.dropout}")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, found {self.protocol!r}")

    def build(self) -> Protocol:
        if self.protocol == "secagg+":
            return SecAggPlus.for_clients(self.clients, bits=self.bits, dropout=max(self.dropout, 0.01), active=self.active)
        if self.protocol == "secagg":
            return SecAgg(bits=self.bits, active=self.active)
        return PlainSum(bits=self.bits)


@dataclass(frozen=True)
class DemoResult:
    secure: Output
    baseline: Output
    max_error: float  # max |decoded secure sum - float sum of the included updates|, update units
    error_bound: float  # n_included / (2 * scale): the nearest-rounding bound


def run_demo(config: DemoConfig) -> DemoResult:
    """Client updates are N(0, 0.01) floats clipped to [-1, 1], encoded at the largest scale whose
    n-fold sum cannot wrap, aggregated by `config.protocol` and by the plaintext baseline."""
    sim = np.random.default_rng(config.seed)
    updates = np.clip(sim.normal(0.0, 0.1, size=(config.clients, config.dim)), -1.0, 1.0)
    ring = Ring(config.bits)
    scale = float(2 ** (config.bits - 2) // config.clients)  # n * scale * 1 < 2**(bits-1): no wrap
    codec = FixedPoint(scale, ring)
    codec.check_sum_fits(config.clients, 1.0)
    encoded = np.stack([codec.encode(u) for u in updates])
    dropouts = DropoutSchedule.random(config.clients, config.dropout, SeededRandomness(config.seed + 1))
    secure = secure_sum(encoded, protocol=config.build(), dropouts=dropouts, seed=config.seed)
    baseline = secure_sum(encoded, protocol=PlainSum(bits=config.bits), dropouts=dropouts, seed=config.seed)
    truth = updates[list(secure.included)].sum(axis=0)
    error = float(np.max(np.abs(codec.decode(secure.result) - truth)))
    return DemoResult(secure, baseline, error, len(secure.included) / (2 * scale))
