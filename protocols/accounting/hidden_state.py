"""The hidden-state threat model: only the final model is released.

Each round is a noisy step x <- phi_t(x) + N(0, sigma**2 I) (then, if declared, a projection onto a convex
set of diameter D). A gradient step at rate lr on a convex loss with smoothness beta and strong convexity
lambda >= 0 is c-Lipschitz with c = max(|1 - lr lambda|, |1 - lr beta|). A client's data changes phi_t by
at most Delta (sigma = z Delta) in each round t of its participation set S, and nothing in other rounds.

Shifted Renyi divergence (Feldman, Mironov, Talwar, Thakurta, FOCS 2018: shift reduction
D^(z)(X + Z || Y + Z) <= D^(z + a)(X || Y) + alpha a**2 / (2 sigma**2), contraction
D^(c z + s_t)(phi(X) || phi'(Y)) <= D^(z)(X || Y)) bounds the last iterate by alpha / (2 sigma**2) sum_t a_t**2
for every schedule a_t >= 0 whose shift z_t = c z_{t-1} + s_t - a_t stays >= 0 and ends at z_T = 0.
With w_t = c**(T - t), V_t = sum_{u <= t} w_u**2 and P_t = sum_{u <= t, u in S} w_u Delta, the schedule's
cumulative b-sum B_t = sum_{u <= t} w_u a_u must stay <= P_t and end at P_T, and its cost is
sum (Delta B)**2 / (Delta V): the minimum is the energy of the greatest convex minorant of the points
(V_t, P_t) (a taut string), computed here exactly. It never exceeds plain composition (a_t = s_t), equals
it when c = 1 and the client takes part in every round (a linear loss: the truth), and when c < 1 and
S = every round it equals the exact Renyi divergence of noisy GD on a quadratic, P_T**2 / V_T
(Cauchy-Schwarz; the strongly convex rate of Altschuler and Talwar 2022 / Ye and Shokri 2022).
With a bounded domain (Altschuler and Talwar, "more iterations without more privacy loss", 2022), any
two iterates are within D, so the schedule may start at any round tau with shift D: P_t gains
c**(T - tau) D, and the bound is the minimum over the windows tried.
The bound needs Gaussian noise and c <= 1; otherwise the epsilon is the plain composition of every
participation, and the result says which bound was used and why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from protocols.accounting.mechanisms import Gaussian, Mechanism
from protocols.accounting.rdp import ORDERS, compose_epsilon, to_epsilon


@dataclass(frozen=True, slots=True, kw_only=True)
class ConvexSmooth:
    """Declared by the caller: each round is one gradient step at `learning_rate` on a convex loss with
    this smoothness beta and strong convexity lambda (0 for merely convex). `domain_diameter`, if given,
    is the L2 diameter of the convex set every iterate is projected onto, in units of the per-round shift
    Delta one client's data can cause (the same units as the noise's sensitivity)."""

    smoothness: float
    learning_rate: float
    strong_convexity: float = 0.0
    domain_diameter: float | None = None

    def __post_init__(self) -> None:
        if not self.smoothness > 0 or not self.learning_rate > 0 or not 0 <= self.strong_convexity <= self.smoothness:
            raise ValueError(f"need smoothness > 0, learning_rate > 0, 0 <= strong_convexity <= smoothness; found "
                             f"{self.smoothness}, {self.learning_rate}, {self.strong_convexity}")
        if self.domain_diameter is not None and not self.domain_diameter > 0:
            raise ValueError(f"domain_diameter must be > 0, found {self.domain_diameter}")

    @property
    def contraction(self) -> float:
        """c = max(|1 - lr lambda|, |1 - lr beta|): the Lipschitz constant of one gradient step."""
        return max(abs(1 - self.learning_rate * self.strong_convexity), abs(1 - self.learning_rate * self.smoothness))


@dataclass(frozen=True, slots=True)
class HiddenStateEpsilon:
    epsilon: float
    bound: str  # "last-iterate (amplification by iteration)" or "distributed DP"
    reason: str


def _minorant_energy(v: np.ndarray, p: np.ndarray) -> float:
    """sum (dP)**2 / dV over the greatest convex minorant of (0, 0), (v_i, p_i) (v increasing, p >= 0)."""
    hull = [(0.0, 0.0)]
    for x, y in zip(v.tolist(), p.tolist()):
        while len(hull) >= 2:
            (x0, y0), (x1, y1) = hull[-2], hull[-1]
            if (y1 - y0) * (x - x0) >= (y - y0) * (x1 - x0):  # hull[-1] lies on or above the chord: drop it
                hull.pop()
            else:
                break
        hull.append((x, y))
    return sum((y1 - y0) ** 2 / (x1 - x0) for (x0, y0), (x1, y1) in zip(hull, hull[1:]))


def shift_energy(shifts: Sequence[float], contraction: float, *, start: int = 0, start_shift: float = 0.0) -> float:
    """min sum_t a_t**2 over the shifted-Renyi schedules of the module doc, from round `start` (whose
    iterates are within `start_shift`) to the last; `shifts[t - 1]` = s_t (units of Delta), c = `contraction` in (0, 1]."""
    s = np.asarray(shifts, dtype=float)[start:]
    w = contraction ** np.arange(len(s) - 1, -1, -1, dtype=float)
    keep = w > 0  # c**k underflows for far rounds: they carry neither shift nor noise
    v, p = np.cumsum(w[keep] ** 2), start_shift * contraction ** len(s) + np.cumsum(w[keep] * s[keep])
    return _minorant_energy(v, p) if p[-1] > 0 else 0.0


def _windows(rounds: int) -> list[int]:
    """Window starts tau tried with a bounded domain: every tau for the last 64 rounds, then a geometric grid."""
    lengths = set(range(1, min(rounds, 64) + 1)) | {int(k) for k in np.geomspace(64, rounds, 48) if k <= rounds}
    return sorted(rounds - k for k in lengths)


def last_iterate_energy(participation: Sequence[int], rounds: int, assumptions: ConvexSmooth) -> tuple[float, str]:
    """The shift energy E (RDP = alpha E / (2 z**2)) of a client taking part in `participation` (1-based), and
    which schedule gave it."""
    s = np.zeros(rounds)
    s[np.asarray(participation) - 1] = 1.0
    c = assumptions.contraction
    best, how = shift_energy(s, c), "from round 1"
    if assumptions.domain_diameter is not None:
        for tau in _windows(rounds):
            e = shift_energy(s, c, start=tau, start_shift=assumptions.domain_diameter)
            if e < best:
                best, how = e, f"window of the last {rounds - tau} rounds, domain diameter {assumptions.domain_diameter:.4g}"
    return best, how


def last_iterate_epsilon(
    mechanism: Mechanism, *, rounds: int, participation: Sequence[int] | None = None, assumptions: ConvexSmooth | None = None, delta: float
) -> HiddenStateEpsilon:
    """Epsilon of the final model for a client that took part in `participation` (1-based rounds out of
    `rounds`; default every round), each round adding `mechanism`'s noise: the shifted-Renyi bound of the
    module doc under declared assumptions, or plain composition, whichever is smaller.

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
    energy, how = last_iterate_energy(taken, rounds, assumptions)
    eps = to_epsilon(np.array(ORDERS) / (2 * mechanism.noise_multiplier**2) * energy, delta)
    kind = "strongly convex" if assumptions.strong_convexity > 0 else "convex"
    if energy >= len(taken) * (1 - 1e-12) or eps >= fallback:
        return HiddenStateEpsilon(fallback, "distributed DP", f"{kind}, c = {c:.4g}: the shifted-Renyi bound is no smaller than plain composition")
    return HiddenStateEpsilon(eps, "last-iterate (amplification by iteration)",
                              f"{kind}, smooth, contraction c = {c:.4g} <= 1, Gaussian noise: declared; shifted-Renyi schedule {how}, "
                              f"{energy:.4g} of {len(taken)} participations' RDP")
