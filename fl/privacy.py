"""Epsilon by observer: which party of a stack sees what, and the cumulative epsilon it faces.

Each observer has one view, and the view decides which noise protects a client against it:

- "clear": sees every update in the clear (the server of `plain`, `robust`, `central-dp`): no DP.
- "aggregate": sees who took part and each round's noisy aggregate: the rounds' aggregate mechanisms
  (the honest, non-colluding noise that reached the output) composed, never amplified by sampling (it
  knows, or chose, who took part).
- "released": sees only the published models: the same mechanisms, amplified by sampling only where the
  sampling is hidden from it and the bound is known (`released_sampling_rate`).
- "own share": sees individual noisy inputs, or distances, norms and selections computed from them
  (robust rules over shares or ciphertexts, local DP): one client's own noise share, composed. Whatever such
  an observer learns is a function of the clients' locally noised inputs, so this bound holds for every
  rule; the released model, computed from what it saw, inherits it.
- "final model" (hidden state): only the last model; the last-iterate bound under its declared
  assumptions, else the composition of every round (`protocols.accounting.last_iterate_epsilon`).

Neighbouring datasets differ in one client's update (zero-out: replaced by zeros), the convention of
the mechanisms' sensitivities. Every epsilon is at the experiment's delta, by the RDP accountant of
`protocols.accounting` (dp-accounting's conversion).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from protocols.accounting import compose_epsilon

SUM_STACKS = ("secagg+", "ddp+secagg+", "ckks")  # the released update is the noisy sum / (q * clients) under Poisson participation
ROBUST_SELECTION = "the servers see distances, norms or the selection: data-dependent, so only each client's own noise share counts"

# stack -> observer -> view. "released model" is whoever sees only the published models.
OBSERVERS: dict[str, dict[str, str]] = {
    "plain": {"server": "clear", "released model": "released"},
    "robust": {"server": "clear", "released model": "released"},
    "central-dp": {"server": "clear", "released model": "released"},
    "local-dp": {"server": "own share", "released model": "own share"},
    "secagg+": {"server": "aggregate", "released model": "released"},
    "ddp+secagg+": {"server": "aggregate", "released model": "released"},
    "ckks": {"server": "aggregate", "key holder": "aggregate", "released model": "released"},
    "ckks-robust": {"server": "own share", "key holder": "own share", "released model": "own share"},
    "two-server": {"server": "own share", "second server": "own share", "released model": "own share"},
    "ddp+two-server": {"server": "own share", "second server": "own share", "released model": "own share"},
    # the aggregator sees ciphertexts only: the final model's bound is an upper bound on what it learns
    "hidden-state": {"server": "final model", "key holder": "aggregate", "clients": "aggregate", "released model": "final model"},
}


@dataclass(frozen=True, slots=True)
class ObserverEpsilon:
    """The cumulative epsilon at `delta` one observer faces, the bound it comes from and what it assumes."""

    epsilon: float
    delta: float
    bound: str
    assumptions: str


@dataclass(frozen=True, slots=True)
class RoundNoise:
    """The noise of one completed round: `aggregate`, the mechanism of the honest, non-colluding shares (or the
    central noise) that reached the output; `own_share`, one client's own share alone. None where there is none."""

    aggregate: object | None
    own_share: object | None
    uncounted: int = 0  # shares of included clients left out of `aggregate` (possibly Byzantine or colluding)


def released_sampling_rate(stack: str, participation: str, sample_fraction: float) -> tuple[float, str]:
    """The sampling rate by which the released model's epsilon is amplified, and why.

    Poisson participation (each client joins with probability q, the sampling hidden from the observer) is
    the sampling the subsampled-RDP bound is stated for; it applies to the stacks that release a sum of the
    noisy inputs over a fixed denominator (`SUM_STACKS`), not to a rule whose sensitivity is stated for a
    fixed set of participants. Fixed-size sampling gets no amplification: a bound that holds, not the tightest.
    """
    if participation == "poisson" and stack not in SUM_STACKS:
        return 1.0, f"the {stack} release is no sum over a fixed denominator: no amplification by sampling claimed"
    if participation == "poisson":
        return sample_fraction, (f"Poisson participation at q = {sample_fraction:g}, hidden from this observer (subsampled RDP, Zhu and Wang "
                                 "2019), each round's noise taken as that of the shares that reached it, a sampled client's own included")
    # LEAD: plug the sampling-without-replacement bound in here, e.g. compose_epsilon(..., sampling="without_replacement").
    return 1.0, "fixed-size sampling: no amplification claimed (a bound that holds; without-replacement bound not yet used)"


def epsilon_by_observer(
    stack: str, rounds: Sequence[RoundNoise], *, delta: float, participation: str, sample_fraction: float, byzantine_clients: int,
    final_model: Callable[[], tuple[float, str]] | None = None, released_delta: float | None = None,
) -> dict[str, ObserverEpsilon]:
    """Every observer of `stack` and its cumulative epsilon after `rounds` (the completed ones).

    Args:
        byzantine_clients: how many clients of the run may be Byzantine, for the text.
        final_model: returns (epsilon, bound and reason) of the hidden-state last iterate.
        released_delta: the delta left for the amplified released-model bound once the probability that
            Poisson participation produced an aborting round is taken off (default `delta`).
    """
    aggregates = [r.aggregate for r in rounds if r.aggregate is not None]
    shares = [r.own_share for r in rounds if r.own_share is not None]
    rate, sampling = released_sampling_rate(stack, participation, sample_fraction)
    missing = len(rounds) - len(aggregates)
    if stack == "central-dp":
        counted = "the trusted server's Gaussian noise, scaled to the rule's sensitivity (protocols.layers.rule_sensitivity)"
    else:
        uncounted = max((r.uncounted for r in rounds), default=0)
        counted = (f"the noise of the shares that reached the output, less {uncounted} a round that may be Byzantine (of "
                   f"{byzantine_clients} in the run) or declared colluding")
    if missing:
        counted += f"; {missing} round(s) with no counted noise in the output make it infinite"
    composed: dict[tuple[float, float], float] = {}

    def compose(q: float, at: float) -> float:
        if (q, at) not in composed:
            composed[q, at] = compose_epsilon(aggregates, sampling_rate=q, delta=at) if not missing and at > 0 else math.inf
        return composed[q, at]

    out = {}
    for observer, view in OBSERVERS[stack].items():
        if view == "clear":
            out[observer] = ObserverEpsilon(math.inf, delta, "no DP", "sees every update in the clear")
        elif not aggregates and not shares:
            out[observer] = ObserverEpsilon(math.inf, delta, "no DP", "no DP noise reached what it sees")
        elif view == "own share":
            eps = compose_epsilon(shares, delta=delta) if len(shares) == len(rounds) else math.inf
            why = "each input carries its client's whole noise" if stack == "local-dp" else ROBUST_SELECTION
            out[observer] = ObserverEpsilon(eps, delta, "local DP of each client's own noise share, composed", f"{why}; no amplification by sampling")
        elif view == "final model" and final_model is not None:
            eps, bound = final_model()
            if compose(1.0, delta) < eps:  # the final model is computed from every round's aggregate: their composition bounds it too
                eps, bound = compose(1.0, delta), f"RDP composition of the rounds' aggregate noise (tighter than {bound})"
            sees = "sees ciphertexts only, so the final model's bound bounds it" if observer == "server" else "sees only the final model"
            out[observer] = ObserverEpsilon(eps, delta, bound, f"{sees}; {counted}")
        elif view == "released" and rate < 1.0:
            at = delta if released_delta is None else released_delta
            paid = "" if at == delta else f"; delta {delta:g} less {delta - at:.3g} for rounds one client's presence could decide"
            out[observer] = ObserverEpsilon(compose(rate, at), delta, "RDP composition of the rounds' aggregate noise, subsampled",
                                            f"{sampling}; {counted}{paid}")
        else:
            how = sampling if view == "released" else "sees each round's aggregate and may know who took part: no amplification by sampling"
            out[observer] = ObserverEpsilon(compose(1.0, delta), delta, "RDP composition of the rounds' aggregate noise", f"{how}; {counted}")
    return out
