"""Adaptive clipping to a target quantile of the client norms (Andrew et al., NeurIPS 2021).

Round t clips every update to C_t (an `L2Clip` around the inner stack, with its own report row). Each client also reports the bit b_i = [||x_i|| <= C_t]; the bits are
summed by their own `count` protocol (a ring protocol, normally a distributed-noise layer over secure
aggregation, so the server sees only a noisy count), and the server updates the norm geometrically:

    C_{t+1} = C_t * exp(-learning_rate * (b_bar - target_quantile)),  b_bar = noisy count / included clients.

The count is a query of its own with sensitivity 1: its mechanism and epsilon are reported in this
layer's guarantee, to be composed with the update's. The inner stack's sensitivity must cover C_t
(rebuild it each round with `norm`, or give it a clip >= every C_t).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from protocols.core.protocol import Protocol
from protocols.core.report import Cost, Guarantee, LayerReport, Output, ThreatModel
from protocols.core.schedule import DropoutSchedule
from protocols.core.stack import Field, LayerSpec, StackContext, Traits, build, register
from protocols.core.transport import InProcessTransport
from protocols.layers.clip import L2Clip
from protocols.layers.noise import DistributedNoise
from secagg.encoding import FixedPoint
from secagg.randomness import Randomness
from secagg.ring import Ring


@dataclass(eq=False)
class AdaptiveClip(Protocol):
    """Clips to `norm` (updated every round) and tracks the `target_quantile` of the client norms."""

    norm: float
    target_quantile: float
    learning_rate: float
    count: Protocol
    inner: Protocol
    name: str = "adaptive-clip"

    def __post_init__(self) -> None:
        if not self.norm > 0 or not 0 < self.target_quantile < 1 or not self.learning_rate > 0:
            raise ValueError(f"need norm > 0, 0 < target_quantile < 1, learning_rate > 0; found {self.norm}, {self.target_quantile}, {self.learning_rate}")

    def run(self, inputs: np.ndarray, dropouts: DropoutSchedule, rng: Randomness, transport: InProcessTransport) -> Output:
        n = inputs.shape[0]
        start = time.thread_time()
        ring = Ring(self.count.bits)
        bits = (np.linalg.norm(inputs, axis=1) <= self.norm).astype(ring.dtype)[:, None]
        own_seconds = (time.thread_time() - start) / n
        counted = self.count.run(bits, dropouts, rng.fork("count"), InProcessTransport(n, rng.fork("count links")))
        noisy = float(FixedPoint(1.0, ring).decode(counted.result)[0])  # the signed noisy count
        out = L2Clip(self.norm, self.inner).run(inputs, dropouts, rng, transport)  # the clipping itself, with its own row
        used = self.norm
        fraction = noisy / max(len(counted.included), 1)
        self.norm = used * math.exp(-self.learning_rate * (fraction - self.target_quantile))
        wire = counted.reports[0].cost  # the count's bytes and rounds: those of its protection protocol
        cost = Cost(
            client_seconds_mean=own_seconds + sum(r.cost.client_seconds_mean for r in counted.reports),
            client_seconds_max=own_seconds + sum(r.cost.client_seconds_max for r in counted.reports),
            server_seconds=sum(r.cost.server_seconds for r in counted.reports),
            bytes_up_mean=wire.bytes_up_mean, bytes_up_max=wire.bytes_up_max, bytes_down_mean=wire.bytes_down_mean,
            bytes_down_max=wire.bytes_down_max, rounds=wire.rounds,
        )
        noise = next((r.guarantee for r in counted.reports if r.guarantee.dp_mechanism is not None), None)
        guarantee = Guarantee(
            threat_model=ThreatModel.LOCAL,
            server_learns="a noisy count of the clients within the clip norm (through the count protocol)",
            collusion="as the count protocol's",
            dropout_tolerance=n,
            exact=False,
            parameters={"norm_used": round(used, 6), "next_norm": round(self.norm, 6), "target_quantile": self.target_quantile,
                        "noisy_fraction_within": round(fraction, 4)},
            dp_mechanism=noise.dp_mechanism if noise else None,
            epsilon=noise.epsilon if noise else math.inf,
            delta=noise.delta if noise else None,
            notes="epsilon is the count query's alone (sensitivity 1); compose it with the update's",
        )
        return out.then(out.result, LayerReport(self.name, cost, guarantee))


@register("adaptive-clip", fields={
    "norm": Field(float, check=lambda v: v > 0, expect="> 0"), "target_quantile": Field(float, 0.5, lambda v: 0 < v < 1, "in (0, 1)"),
    "learning_rate": Field(float, 0.2, lambda v: v > 0, "> 0"), "count": Field(str, "secagg+", choices=("secagg+", "secagg")),
    "count_bits": Field(int, 16, lambda v: 2 <= v <= 62, "in [2, 62]"), "count_noise_multiplier": Field(float, 0.0, lambda v: v >= 0, ">= 0")},
    traits=Traits(clips=True, splits=False, unaccounted="the adaptive clip's count of clients within the norm, a query of its own "
                                                         "(its epsilon is in its report row; with count_noise_multiplier 0 it is exact, no DP)"),
    about="clip to a norm that tracks target_quantile of the client norms; the count is summed by `count` (with Skellam "
          "noise of count_noise_multiplier, sensitivity 1, if > 0); the norm moves every round, so the layers inside it need a "
          "fixed clip of their own")
def _adaptive_clip(values: dict, ctx: StackContext, inner) -> Protocol:
    count = build((LayerSpec.of(values["count"], bits=values["count_bits"]),), ctx.replace(rest=(), position=0), inputs="ring")
    z = values["count_noise_multiplier"]
    if z > 0:
        count = DistributedNoise("skellam", z**2 / ctx.survivors, 1.0, 1.0, count, delta=ctx.delta)
    return AdaptiveClip(values["norm"], values["target_quantile"], values["learning_rate"], count, inner(ctx.replace(clip=None)))
