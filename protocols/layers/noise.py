"""Distributed DP noise: each client adds an integer noise share in Z_{2^b} before protection.

The shares are sized so that `expected_clients` of them sum to the target noise. Dropped clients add
nothing and colluding clients' shares are known to the server, so the guarantee accounts with the
noise that actually reached the aggregate: (included - assume_colluding) shares.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from protocols.accounting import DistributedDiscreteGaussian, Skellam, compose_epsilon, epsilon
from protocols.dp.samplers import discrete_gaussian, skellam
from protocols.layers.transform import TransformLayer
from protocols.protocol import RingProtocol
from protocols.report import Guarantee, Output, ThreatModel
from secagg.randomness import Randomness
from secagg.ring import Ring

MECHANISMS = ("skellam", "ddg")


def noise_mechanism(kind: str, local_variance: float, clients: int, dim: int, l2: float, l1: float) -> Skellam | DistributedDiscreteGaussian:
    """The accounting mechanism of `clients` shares of variance `local_variance` each (integer units)."""
    common = {"clients": clients, "dim": dim, "l2_sensitivity": l2, "l1_sensitivity": l1}
    if kind == "skellam":
        return Skellam(local_mu=local_variance / 2, **common)
    return DistributedDiscreteGaussian(local_stddev=math.sqrt(local_variance), **common)


@dataclass(eq=False)
class DistributedNoise(TransformLayer):
    """Adds Sk(local_variance / 2) or N_Z(0, local_variance) per coordinate (integer units) to each client's
    ring vector. `l2_sensitivity` and `l1_sensitivity` are those of one client's integer vector."""

    mechanism: str
    local_variance: float
    l2_sensitivity: float
    l1_sensitivity: float
    inner: RingProtocol
    delta: float = 1e-5
    assume_colluding: int = 0
    name: str = "noise"
    ledger: list = field(default_factory=list)  # the mechanism of every round this layer ran, for the cumulative epsilon

    def __post_init__(self) -> None:
        if self.mechanism not in MECHANISMS:
            raise ValueError(f"mechanism must be one of {MECHANISMS}, found {self.mechanism!r}")
        if not self.local_variance > 0 or self.assume_colluding < 0:
            raise ValueError(f"need local_variance > 0 and assume_colluding >= 0; found {self.local_variance}, {self.assume_colluding}")

    @property
    def bits(self) -> int:
        """The ring of the inner protocol, which this layer's noise lives in."""
        return self.inner.bits

    def prepare(self, n: int, d: int, rng: Randomness) -> None:
        self._d, self._n = d, n

    def encode(self, client: int, row: np.ndarray, rng: Randomness) -> np.ndarray:
        ring = Ring(self.bits)
        if self.mechanism == "skellam":
            noise = skellam(rng, len(row), self.local_variance / 2)
        else:
            noise = discrete_gaussian(rng, len(row), math.sqrt(self.local_variance))
        return ring.add(row, noise.astype(ring.dtype))

    def decode(self, aggregate: np.ndarray, included: tuple[int, ...]) -> np.ndarray:
        return aggregate

    def guarantee(self, out: Output, totals: dict[str, float]) -> Guarantee:
        honest = out.whole_inputs - self.assume_colluding
        mechanism = noise_mechanism(self.mechanism, self.local_variance, honest, self._d, self.l2_sensitivity, self.l1_sensitivity) if honest > 0 else None
        return shares_guarantee(
            self, mechanism, honest, self._n,
            {"mechanism": self.mechanism, "local_variance": round(self.local_variance, 3),
             "noise_stddev_integer_units": round(math.sqrt(len(out.included) * self.local_variance), 3)},
            notes="epsilon uses the noise that reached the output: dropped clients added none; cumulative_epsilon composes "
            "every round this layer object ran (full participation assumed)",
        )


def shares_guarantee(layer, mechanism, shares: int, n: int, parameters: dict, *, notes: str) -> Guarantee:
    """The guarantee of a layer whose clients add noise shares (`DistributedNoise`, `GaussianShares`): this round's
    epsilon for `mechanism`, the noise of the `shares` honest shares that reached the output (None if none did),
    which joins `layer.ledger`, and the ledger's cumulative epsilon, both at `layer.delta`."""
    eps = epsilon(mechanism, steps=1, delta=layer.delta) if mechanism is not None else math.inf
    if mechanism is not None:
        layer.ledger.append(mechanism)
    cumulative = compose_epsilon(layer.ledger, delta=layer.delta) if mechanism is not None else math.inf
    return Guarantee(
        threat_model=ThreatModel.HONEST_BUT_CURIOUS_SERVER,
        server_learns="the noisy aggregate only (through the inner protection layer)",
        collusion=f"accounted with {layer.assume_colluding} colluding clients whose noise the server knows",
        dropout_tolerance=n,
        exact=False,
        parameters={**parameters, "noise_shares_in_output": max(shares, 0), "rounds_in_ledger": len(layer.ledger),
                    "cumulative_epsilon": round(cumulative, 4)},
        dp_mechanism=mechanism,
        epsilon=eps,
        delta=layer.delta,
        notes=notes,
    )
