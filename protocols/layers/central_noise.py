"""Central DP in the clear, a baseline: a trusted server sees every update, clips each row it receives to L2
norm `clip` itself (a Byzantine client may skip the client-side clip), runs its rule and adds N(0, (z s)**2)
per coordinate to the rule's output, s the rule's L2 sensitivity (`rule_sensitivity`).

Every epsilon here is against whoever sees the output (the released model); the server itself sees
every update, so no DP holds against it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from protocols.accounting import Gaussian, epsilon
from protocols.core.protocol import OpenRound
from protocols.core.report import Guarantee, Output, ThreatModel
from protocols.core.schedule import DropoutSchedule
from protocols.core.transport import InProcessTransport
from protocols.dp.samplers import gaussian
from protocols.layers.transform import TransformLayer
from protocols.robust.layer import PlainRobust
from secagg.randomness import Randomness

ORDER_STATISTIC_RULES = ("mean", "trimmed_mean", "coordinate_median")
BALL_RULES = ("krum", "multi_krum", "geometric_median", "centered_clipping")  # output in the convex hull of the inputs (and 0)


def rule_sensitivity(rule: str, n: int, f: int, clip: float) -> float:
    """L2 sensitivity (update units) of `rule` over n updates of L2 norm <= clip when one update is replaced
    by zeros (the zero-out neighbours the mechanisms of `protocols.accounting` are stated for):

    - mean: clip / n.
    - trimmed_mean (f dropped on each side of every coordinate): clip / (n - 2f). In a coordinate every
      order statistic is non-decreasing in each input and their total moves by exactly a_j - b_j when input
      a becomes b, so the kept n - 2f move by |a_j - b_j| in total at most; hence ||change|| <= ||a - b|| / (n - 2f).
    - coordinate_median: clip (the same argument for the one or two middle order statistics).
    - krum, multi_krum, geometric_median, centered_clipping (started at 0): 2 clip, the diameter of the
      ball of radius clip that holds the inputs and therefore their convex hull, where these outputs lie
      (this needs every input clipped, not only the neighbour's).

    Raises:
        ValueError: for an unknown rule, n < 1, f < 0, n <= 2f (trimmed_mean) or clip <= 0.
    """
    if rule not in ORDER_STATISTIC_RULES + BALL_RULES:
        raise ValueError(f"no sensitivity bound for rule {rule!r}; known: {ORDER_STATISTIC_RULES + BALL_RULES}")
    if n < 1 or f < 0 or not clip > 0 or (rule == "trimmed_mean" and f > 0 and n <= 2 * f):
        raise ValueError(f"need n >= 1, f >= 0 (n > 2f for trimmed_mean), clip > 0; found n={n}, f={f}, clip={clip}")
    if rule == "mean" or (rule == "trimmed_mean" and f == 0):
        return clip / n
    if rule == "trimmed_mean":
        return clip / (n - 2 * f)
    return clip if rule == "coordinate_median" else 2 * clip


@dataclass(eq=False)
class CentralGaussian(TransformLayer):
    """The trusted server adds N(0, (noise_multiplier * rule_sensitivity(...))**2) to the output of `inner`,
    a rule in the clear over updates the server clips to `clip` (update units: `inner` is given clip=clip, so
    every received row, a Byzantine client's too, has norm <= clip, which the sensitivity needs); the noise
    comes from the server's own randomness, never from the round's public seed.

    Raises:
        ValueError: if `inner` already clips at a bound other than `clip`.
    """

    noise_multiplier: float
    clip: float
    inner: PlainRobust
    delta: float = 1e-5
    name: str = "central-dp"

    def __post_init__(self) -> None:
        if not self.noise_multiplier > 0 or not self.clip > 0:
            raise ValueError(f"need noise_multiplier > 0 and clip > 0; found {self.noise_multiplier}, {self.clip}")
        if not isinstance(self.inner, PlainRobust) or self.inner.pre is not None:
            raise ValueError(f"inner must be a PlainRobust rule without pre-aggregation, found {self.inner!r}")
        rule_sensitivity(self.inner.rule, 2 * self.inner.f + 1, self.inner.f, self.clip)  # refuses a rule without a bound
        if self.inner.clip not in (None, self.clip):
            raise ValueError(f"inner clips at {self.inner.clip}, the sensitivity is stated for clip={self.clip}")
        self.inner = replace(self.inner, clip=self.clip)

    def run(self, inputs: np.ndarray, dropouts: DropoutSchedule, rng: Randomness, transport: InProcessTransport) -> Output:
        self._noise_rng = rng.fork(self.name)
        return super().run(inputs, dropouts, rng, transport)

    def open_round(self, n: int, d: int, rng: Randomness) -> OpenRound:
        self._noise_rng = rng.fork(self.name)
        return super().open_round(n, d, rng)

    def prepare(self, n: int, d: int, rng: Randomness) -> None:
        self._n = n

    def encode(self, client: int, row: np.ndarray, rng: Randomness) -> np.ndarray:
        return row

    def sensitivity(self, included: int) -> float:
        return rule_sensitivity(self.inner.rule, included, self.inner.f, self.clip)

    def decode(self, aggregate: np.ndarray, included: tuple[int, ...]) -> np.ndarray:
        stddev = self.noise_multiplier * self.sensitivity(len(included))
        return np.asarray(aggregate, dtype=np.float64) + gaussian(self._noise_rng, len(aggregate), stddev)

    def guarantee(self, out: Output, totals: dict[str, float]) -> Guarantee:
        mechanism = Gaussian(noise_multiplier=self.noise_multiplier)
        s = self.sensitivity(len(out.included))
        return Guarantee(
            threat_model=ThreatModel.NONE,
            server_learns="every update in the clear (a trusted curator), clipped by the server to clip before the rule",
            collusion="none needed: the server sees everything",
            dropout_tolerance=self._n,
            exact=False,
            parameters={"rule": self.inner.rule, "sensitivity": round(s, 6), "noise_stddev": round(self.noise_multiplier * s, 6)},
            dp_mechanism=mechanism,
            epsilon=epsilon(mechanism, steps=1, delta=self.delta),
            delta=self.delta,
            notes="epsilon against whoever sees the output only; sensitivity for zero-out neighbours (see rule_sensitivity)",
        )
