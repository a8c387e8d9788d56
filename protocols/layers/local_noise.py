"""Local DP, a baseline: each client adds the full N(0, (z C)**2) per coordinate to its clipped update, so its
input is (epsilon, delta)-DP by itself (zero-out neighbours, L2 sensitivity C), whoever sees it and whatever
rule follows: a Gaussian mechanism of noise multiplier z each round, against every observer."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from protocols.accounting import epsilon
from protocols.core.report import Guarantee, Output
from protocols.layers.gaussian_shares import GaussianShares
from protocols.layers.transform import local_guarantee


@dataclass(eq=False)
class LocalGaussian(GaussianShares):
    """`GaussianShares` with `expected_clients` = 1: every share is the whole noise. Build it with `protocols.layers.local_dp`."""

    name: str = "local-dp"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.expected_clients != 1:
            raise ValueError(f"local DP adds the whole noise on each client: expected_clients must be 1, found {self.expected_clients}")

    def guarantee(self, out: Output, totals: dict[str, float]) -> Guarantee:
        mechanism = self.share_mechanism()
        plain = local_guarantee(self._n, exact=False, server_learns="each included client's noisy update",
                                parameters={"noise_multiplier": self.noise_multiplier, "noise_stddev": round(self.share_stddev, 6)},
                                notes="local DP: one client's own noise protects its update against every observer; rounds compose")
        return dataclasses.replace(plain, dp_mechanism=mechanism, epsilon=epsilon(mechanism, steps=1, delta=self.delta), delta=self.delta)

