"""Distributed Gaussian noise on float updates (for CKKS protection): each client adds a share
N(0, (z C)**2 / expected_clients) per coordinate to its clipped update, so `expected_clients`
shares sum to the Gaussian mechanism with noise multiplier z for L2 sensitivity C.

The guarantee accounts with the shares that reached the output: m included clients give noise
variance (m / expected) (z C)**2, i.e. noise multiplier z sqrt(m / expected) (less than z when
clients dropped), minus `assume_colluding` shares the server may know or that Byzantine clients never added.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from protocols.accounting import Gaussian
from protocols.core.protocol import Protocol
from protocols.core.report import Guarantee, Output
from protocols.core.stack import Field, StackContext, register, uncounted
from protocols.dp.samplers import gaussian
from protocols.layers.noise import counted_shares, shares_guarantee
from protocols.layers.transform import TransformLayer
from secagg.randomness import Randomness


@dataclass(eq=False)
class GaussianShares(TransformLayer):
    noise_multiplier: float
    clip: float
    expected_clients: int
    inner: Protocol
    delta: float = 1e-5
    assume_colluding: int = 0
    name: str = "gaussian-noise"

    def __post_init__(self) -> None:
        if not self.noise_multiplier > 0 or not self.clip > 0 or self.expected_clients < 1 or self.assume_colluding < 0:
            raise ValueError(f"need noise_multiplier > 0, clip > 0, expected_clients >= 1, assume_colluding >= 0; found "
                             f"{self.noise_multiplier}, {self.clip}, {self.expected_clients}, {self.assume_colluding}")

    @property
    def share_stddev(self) -> float:
        return self.noise_multiplier * self.clip / math.sqrt(self.expected_clients)

    def prepare(self, n: int, d: int, rng: Randomness) -> None:
        self._n = n

    def encode(self, client: int, row: np.ndarray, rng: Randomness) -> np.ndarray:
        return np.asarray(row, dtype=np.float64) + gaussian(rng, len(row), self.share_stddev)

    def unprotected(self, client: int, row: np.ndarray, rng: Randomness) -> np.ndarray:
        return np.asarray(row, dtype=np.float64)  # no noise

    def decode(self, aggregate: np.ndarray, included: tuple[int, ...]) -> np.ndarray:
        return aggregate

    def mechanism(self, shares: int) -> Gaussian | None:
        """The Gaussian mechanism of `shares` honest shares, or None if none arrived."""
        return Gaussian(noise_multiplier=self.noise_multiplier * math.sqrt(shares / self.expected_clients)) if shares > 0 else None

    def share_mechanism(self) -> Gaussian:
        """One client's own share alone (its local-DP view): noise multiplier z / sqrt(expected_clients)."""
        return self.mechanism(1)

    def guarantee(self, out: Output, totals: dict[str, float]) -> Guarantee:
        whole, counted = counted_shares(out, self.assume_colluding)
        mechanism = self.mechanism(counted)
        return shares_guarantee(
            self, mechanism, whole, counted, self._n, out.chosen_from_inputs,
            {"noise_multiplier_planned": self.noise_multiplier, "share_stddev": round(self.share_stddev, 6),
             "noise_multiplier_effective": round(mechanism.noise_multiplier, 4) if mechanism else 0},
            notes="float Gaussian shares (Box-Muller from the round's randomness); epsilon uses the shares that reached the output",
        )


@register("gaussian", fields={"noise_multiplier": Field(float, check=lambda v: v >= 0, expect=">= 0")},
          about="float Gaussian noise shares of total stddev noise_multiplier * clip over the expected survivors (0: no layer)")
def _gaussian(values: dict, ctx: StackContext, inner) -> Protocol:
    clip = ctx.require("clip", "a clip layer outside it (the noise is sized to the clip bound)")
    if values["noise_multiplier"] == 0:  # no layer: the inputs are as the clip left them (review 22)
        return inner(ctx)
    share = values["noise_multiplier"] * clip / math.sqrt(ctx.survivors)  # GaussianShares.share_stddev
    protection = inner(ctx.replace(norm_bound=None, clip_bounds_input=False, noise_std=math.hypot(ctx.noise_std, share)))
    return GaussianShares(values["noise_multiplier"], clip, ctx.survivors, protection, delta=ctx.delta,
                          assume_colluding=uncounted(ctx, protection))
