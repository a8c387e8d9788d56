"""The hidden-state threat model: only the final model is released.

Privacy amplification by iteration (Feldman, Mironov, Talwar, Thakurta, FOCS 2018): when every round is
a noisy step x <- phi(x) + N(0, sigma**2 I) whose map phi is c-contractive -- a gradient step with rate
lr on a loss with smoothness beta and strong convexity lambda >= 0 is, with c = max(|1 - lr lambda|,
|1 - lr beta|) -- a client whose update (sensitivity Delta) entered at round t of T has, in the last
iterate, RDP

    alpha Delta**2 / (2 sigma**2) * c**(2(T-t)) / sum_{j=0}^{T-t} c**(2j),

by spreading the shift-reduction budget over the T - t + 1 noise draws that follow (Cauchy-Schwarz on
sum_i a_i c**(T-i) = Delta c**(T-t)). With c = 1 (convex, lr <= 2 / beta) this is their
alpha Delta**2 / (2 sigma**2 (T - t + 1)); with lambda > 0 it decays geometrically (the strongly convex
bound). A client's participations compose. The bound needs Gaussian noise and c <= 1, so it applies
only when those assumptions are declared and hold; otherwise the epsilon falls back to the
distributed-DP composition of every participation, and the result says which bound was used and why.
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
    """Declared by the caller: each round is one gradient step at `learning_rate` on a convex loss with
    this smoothness beta and strong convexity lambda (0 for merely convex)."""

    smoothness: float
    learning_rate: float
    strong_convexity: float = 0.0

    def __post_init__(self) -> None:
        if not self.smoothness > 0 or not self.learning_rate > 0 or not 0 <= self.strong_convexity <= self.smoothness:
            raise ValueError(f"need smoothness > 0, learning_rate > 0, 0 <= strong_convexity <= smoothness; found "
                             f"{self.smoothness}, {self.learning_rate}, {self.strong_convexity}")

    @property
    def contraction(self) -> float:
        """c = max(|1 - lr lambda|, |1 - lr beta|): the Lipschitz constant of one gradient step."""
        return max(abs(1 - self.learning_rate * self.strong_convexity), abs(1 - self.learning_rate * self.smoothness))


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
    c = assumptions.contraction
    if c > 1:
        return HiddenStateEpsilon(fallback, "distributed DP", f"lr {assumptions.learning_rate} > 2 / beta: the step map is not contractive")
    z = mechanism.noise_multiplier
    shrink = sum(c ** (2 * (rounds - t)) / sum(c ** (2 * j) for j in range(rounds - t + 1)) for t in taken)
    curve = np.array([a / (2 * z**2) * shrink for a in ORDERS])
    eps = dp_rdp.compute_epsilon(ORDERS, curve, delta)[0]
    kind = "strongly convex" if assumptions.strong_convexity > 0 else "convex"
    return HiddenStateEpsilon(min(eps, fallback), "last-iterate (amplification by iteration)",
                              f"{kind}, smooth, contraction c = {c:.4g} <= 1, Gaussian noise: declared")
