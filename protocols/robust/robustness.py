"""(f, kappa)-robustness coefficients of the rules, as the literature states them.

A rule F is (f, kappa)-robust (Allouah et al., AISTATS 2023, Definition 1) if for every set S of
n - f updates, ||F(x) - mean_S||**2 <= kappa / |S| * sum_{i in S} ||x_i - mean_S||**2.
No rule beats kappa = f / (n - 2f) (their Proposition 1). The upper bounds below are the ones
their Table 1 gives (with r = f / (n - 2f)); None means no bound of this form is known to us.
"""

from __future__ import annotations

import math


def lower_bound(n: int, f: int) -> float:
    """f / (n - 2f): no (f, kappa)-robust rule has a smaller kappa."""
    _check(n, f)
    return f / (n - 2 * f)


def kappa(rule: str, n: int, f: int) -> float | None:
    """The stated kappa of `rule` for n updates and f Byzantine ones (None: not known)."""
    _check(n, f)
    r = f / (n - 2 * f)
    if f == 0:
        return 0.0 if rule in _KNOWN else None
    coefficients = {
        "mean": math.inf,
        "trimmed_mean": 6 * r * (1 + r),
        "coordinate_median": 4 * (1 + r) ** 2,
        "geometric_median": 4 * (1 + r) ** 2,
        "krum": 6 * (1 + r),
    }
    return coefficients.get(rule)


def nnm_kappa(n: int, f: int, inner: float) -> float:
    """kappa of NNM followed by a rule with coefficient `inner`: 8f/(n-f) * (inner + 1) (Allouah et al., Lemma 1)."""
    _check(n, f)
    return 8 * f / (n - f) * (inner + 1)


_KNOWN = {"mean", "trimmed_mean", "coordinate_median", "geometric_median", "krum", "multi_krum", "centered_clipping"}


def _check(n: int, f: int) -> None:
    if f < 0 or n <= 2 * f:
        raise ValueError(f"need 0 <= f and n > 2f, found n={n}, f={f}")
