"""The secure-aggregation demo: float updates of n simulated clients, fixed-point encoded, summed
by a protocol under random dropouts, decoded, and compared with the plaintext sum."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from protocols import DropoutSchedule, Output, PlainSum, Protocol, SecAgg, SecAggPlus, secure_sum
from protocols.layers import distributed_dp
from protocols.layers.noise import MECHANISMS
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
    noise_multiplier: float = 0.0  # > 0: clip, rotate, discretize and add distributed noise before protection
    mechanism: str = "skellam"

    def __post_init__(self) -> None:
        if self.clients < 3:
            raise ValueError(f"clients must be >= 3, found {self.clients}")
        if self.dim < 1:
            raise ValueError(f"dim must be >= 1, found {self.dim}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), found {self.dropout}")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, found {self.protocol!r}")
        if self.noise_multiplier < 0 or self.mechanism not in MECHANISMS:
            raise ValueError(f"noise_multiplier must be >= 0 and mechanism one of {MECHANISMS}, found {self.noise_multiplier}, {self.mechanism!r}")

    def build(self) -> Protocol:
        if self.protocol == "secagg+":
            return SecAggPlus.for_clients_or_complete(self.clients, bits=self.bits, dropout=max(self.dropout, 0.01), active=self.active)
        if self.protocol == "secagg":
            return SecAgg(bits=self.bits, active=self.active)
        return PlainSum(bits=self.bits)


@dataclass(frozen=True)
class DemoResult:
    secure: Output
    baseline: Output
    error: float  # without noise: max |decoded sum - float sum of the included updates|; with noise: its RMS (update units)
    expected: float  # without noise: n_included / (2 * scale), the rounding bound; with noise: the target noise stddev


def run_demo(config: DemoConfig) -> DemoResult:
    """Client updates are N(0, 0.01) floats clipped to [-1, 1], encoded at the largest scale whose
    n-fold sum cannot wrap, aggregated by `config.protocol` and by the plaintext baseline. With a noise
    multiplier, the updates (L2 norm <= 1) go through the distributed-DP recipe instead."""
    sim = np.random.default_rng(config.seed)
    updates = np.clip(sim.normal(0.0, 0.1, size=(config.clients, config.dim)), -1.0, 1.0)
    ring = Ring(config.bits)
    scale = float(2 ** (config.bits - 2) // config.clients)  # n * scale * 1 < 2**(bits-1): no wrap
    codec = FixedPoint(scale, ring)
    codec.check_sum_fits(config.clients, 1.0)
    encoded = np.stack([codec.encode(u) for u in updates])
    dropouts = DropoutSchedule.random(config.clients, config.dropout, SeededRandomness(config.seed + 1))
    baseline = secure_sum(encoded, protocol=PlainSum(bits=config.bits), dropouts=dropouts, seed=config.seed)
    if config.noise_multiplier > 0:
        updates /= np.maximum(1.0, np.linalg.norm(updates, axis=1, keepdims=True))  # within the clip norm 1
        stack = distributed_dp(config.build(), clients=config.clients, dim=config.dim, clip=1.0,
                               noise_multiplier=config.noise_multiplier, mechanism=config.mechanism)
        secure = secure_sum(updates, protocol=stack, dropouts=dropouts, seed=config.seed)
        residual = secure.result - updates[list(secure.included)].sum(axis=0)
        return DemoResult(secure, baseline, float(np.sqrt(np.mean(residual**2))), config.noise_multiplier)
    secure = secure_sum(encoded, protocol=config.build(), dropouts=dropouts, seed=config.seed)
    truth = updates[list(secure.included)].sum(axis=0)
    error = float(np.max(np.abs(codec.decode(secure.result) - truth)))
    return DemoResult(secure, baseline, error, len(secure.included) / (2 * scale))
