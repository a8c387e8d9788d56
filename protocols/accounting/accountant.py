"""An incremental accountant (compose one round at a time, read the cumulative epsilon) and the tightest
epsilon of a run, with the accountant that gave it.

`Accountant` keeps the running sum of the rounds' cached RDP curves, so the cumulative epsilon after each
of T rounds costs O(T) curve additions plus one RDP-to-(epsilon, delta) conversion a read (instead of
re-composing every past round each time, O(T**2)).

    >>> acct = Accountant(delta=1e-5, sampling_rate=0.1)
    >>> for m in mechanisms_of_each_round:
    ...     acct.compose(m)
    ...     print(acct.epsilon)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import dp_accounting
import numpy as np

from protocols.accounting.mechanisms import Gaussian, Mechanism
from protocols.accounting.rdp import ORDERS, _check, _curve, _dp_accounting_logs, composed_rdp, to_epsilon


class Accountant:
    """Cumulative RDP of rounds composed so far, each sampling clients at `sampling_rate` ("poisson" or
    "without_replacement", see `protocols.accounting.rdp`); `epsilon` at `delta` after any round."""

    def __init__(self, *, delta: float, sampling_rate: float = 1.0, sampling: str = "poisson") -> None:
        _check(sampling_rate, sampling, delta)
        self.delta, self.sampling_rate, self.sampling = delta, float(sampling_rate), sampling
        self._rdp = np.zeros(len(ORDERS))
        self._ledger: list[Mechanism] = []

    def compose(self, mechanism: Mechanism, count: int = 1) -> Accountant:
        """Adds `count` rounds of `mechanism`; returns self (chainable). The curve is computed before any state
        changes, so an unsupported mechanism (TypeError) leaves the accountant as it was."""
        if count < 0:
            raise ValueError(f"count must be >= 0, found {count}")
        curve = _curve(mechanism, self.sampling_rate, self.sampling)
        self._rdp = self._rdp + count * curve
        self._ledger.extend([mechanism] * count)
        return self

    @property
    def ledger(self) -> tuple[Mechanism, ...]:
        """Every round composed, in order."""
        return tuple(self._ledger)

    @property
    def rdp(self) -> np.ndarray:
        """The cumulative RDP at ORDERS (a copy)."""
        return self._rdp.copy()

    @property
    def epsilon(self) -> float:
        """(epsilon, delta) of the rounds so far; 0 before any."""
        return to_epsilon(self._rdp, self.delta) if self._ledger else 0.0


@dataclass(frozen=True, slots=True)
class Epsilon:
    value: float
    accountant: str  # "rdp (integer orders)" or "pld (dp_accounting)"


def tightest_epsilon(mechanisms: Sequence[Mechanism], *, delta: float, sampling_rate: float = 1.0, sampling: str = "poisson",
                     pld_discretization: float = 1e-3) -> Epsilon:
    """The smaller of the RDP composition (`compose_epsilon`) and, when every round is Gaussian under Poisson
    (or no) sampling, dp_accounting's PLD accountant (its pessimistic discretization, an upper bound), with
    which one it was. PLD costs about a second for tens of distinct rounds; RDP microseconds."""
    _check(sampling_rate, sampling, delta)
    if not mechanisms:
        return Epsilon(0.0, "rdp (integer orders)")
    rdp = Epsilon(to_epsilon(composed_rdp(mechanisms, sampling_rate=sampling_rate, sampling=sampling), delta), "rdp (integer orders)")
    if sampling != "poisson" or not all(isinstance(m, Gaussian) for m in mechanisms):
        return rdp
    acct = dp_accounting.pld.PLDAccountant(value_discretization_interval=pld_discretization)
    with _dp_accounting_logs():
        for m, count in Counter(mechanisms).items():
            event = dp_accounting.GaussianDpEvent(m.noise_multiplier)
            acct.compose(event if sampling_rate == 1.0 else dp_accounting.PoissonSampledDpEvent(sampling_rate, event), count)
        pld = Epsilon(float(acct.get_epsilon(delta)), "pld (dp_accounting)")
    return pld if pld.value < rdp.value else rdp
