"""The hidden-state threat model: only the final model is released.

Privacy amplification by iteration (Feldman, Mironov, Talwar, Thakurta, FOCS 2018): when every round is
a contractive noisy step -- a gradient step x <- x - lr (g(x) + N(0, sigma**2 I)) on a convex loss with
smoothness beta and lr <= 2 / beta -- a client whose update (sensitivity Delta) entered at round t of T
has, in the last iterate, RDP alpha Delta**2 / (2 sigma**2 (T - t + 1)); its participations compose.
The bound needs Gaussian noise and the contraction, so it applies only when those assumptions are
declared and hold; otherwise the epsilon falls back to the distributed-DP composition of every
participation, and the result says which bound was used and why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from dp_accounting import rdp as dp_rdp

from protocols.accounting.mechanisms import Gaussian, Mechanism
from protocols.accounting.rdp import ORDERS, compose_epsilon


@dataclass(frozen=True, slots=True, kw_only=True)
class ConvexSmooth:
    """Declared by the caller: each round is one gradient step on a convex loss with this smoothness
    (beta, per update unit) at this learning rate; the step map is contractive when lr <= 2 / beta."""

    smoothness: float
    learning_rate: float

    def __post_init__(self) -> None:
        if not self.smoothness > 0 or not self.learning_rate > 0:
            raise ValueError(f"smoothness and learning_rate must be > 0, found {self.smoothness}, {self.learning_rate}")


@dataclass(frozen=True, slots=True)
class HiddenStateEpsilon:
    epsilon: float
    bound: str  # "last-iterate (amplification by iteration)" or "distributed DP"
    reason: str


def last_iterate_epsilon(
    mechanism: Mechanism, *, rounds: int, participation: Sequence[int] | None = None, assumptions: ConvexSmooth | None = None, delta: float
) -> HiddenStateEpsilon:
    """Epsilon of the final model for a client that took part in `participation` (1-based rounds out of
    `rounds`; default every round), each round adding `mechanism`'s noise.

    Raises:
        ValueError: if a participation round is outside [1, rounds].
    """
    taken = list(range(1, rounds + 1)) if participation is None else sorted(set(participation))
    if not taken or taken[0] < 1 or taken[-1] > rounds:
        raise ValueError(f"participation must be rounds in [1, {rounds}], found {participation}")
    fallback = compose_epsilon([mechanism] * len(taken), delta=delta)
    if assumptions is None:
        return HiddenStateEpsilon(fallback, "distributed DP", "no last-iterate assumptions declared")
    if not isinstance(mechanism, Gaussian):
        return HiddenStateEpsilon(fallback, "distributed DP", f"amplification by iteration needs Gaussian noise, not {type(mechanism).__name__}")
    if assumptions.learning_rate > 2 / assumptions.smoothness:
        return HiddenStateEpsilon(fallback, "distributed DP", f"lr {assumptions.learning_rate} > 2 / beta: the step map is not contractive")
    z = mechanism.noise_multiplier
    shrink = sum(1.0 / (rounds - t + 1) for t in taken)
    curve = np.array([a / (2 * z**2) * shrink for a in ORDERS])
    eps = dp_rdp.compute_epsilon(ORDERS, curve, delta)[0]
    return HiddenStateEpsilon(min(eps, fallback), "last-iterate (amplification by iteration)", "convex, smooth, lr <= 2 / beta, Gaussian noise: declared")
