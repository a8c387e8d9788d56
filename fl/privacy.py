"""Epsilon by observer: which party of a stack sees what, and the cumulative epsilon it faces.

Each observer has one view, and the view decides which noise protects a client against it:

- "clear": sees every update in the clear (the server of `plain`, `robust`, `central-dp`): no DP.
- "aggregate": sees who took part and each round's noisy aggregate: the rounds' aggregate mechanisms
  (the honest, non-colluding noise that reached the output) composed, never amplified by sampling (it
  knows, or chose, who took part).
- "released": sees only the published models: the same mechanisms, amplified by sampling only where the
  sampling is hidden from it and the bound is known (`released_sampling`).
- "own share": sees individual noisy inputs, or distances, norms and selections computed from them
  (robust rules over shares or ciphertexts, local DP, the HE key holder that recomputes from every client's
  own ciphertext and so can decrypt each): one client's own noise share, composed. Whatever such
  an observer learns is a function of the clients' locally noised inputs, so this bound holds for every
  rule; the released model, computed from what it saw, inherits it.
- "final model" (hidden state): only the last model; the last-iterate bound under its declared
  assumptions, else the composition of every round (`protocols.accounting.last_iterate_epsilon`).

A round that aborts after client data was sent may already have shown the protocol's parties something
data-dependent (two-server Krum opens the exact distances before the last message, which a corrupt server
can withhold). Such a round counts, with one client's own noise share (None: no noise, so no DP), against
the "aggregate" and "own share" observers, and the "final model" (hidden state: the key holder moves its model on
with a release whose reply may then be lost, so the round's update may be in every later model); the "released"
view saw nothing of it.

Neighbouring datasets differ in one client's update (zero-out: replaced by zeros), the convention of
the mechanisms' sensitivities. Every epsilon is at the experiment's delta, by the RDP accountant of
`protocols.accounting` (dp-accounting's conversion).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fl.stacks import PRESETS, preset_traits
from protocols.accounting import Mechanism, compose_epsilon
from protocols.core.stack import StackTraits

ROBUST_SELECTION = ("it sees individual inputs (a recomputing key holder can decrypt each one), or distances, norms or the selection: "
                    "data-dependent, so only each client's own noise share counts")

# preset -> observer -> view, read from each preset's protection (`protocols.core.stack.Traits.observers`; local noise
# before a server that sees the clear inputs makes every view the client's own share). "released model" is whoever
# sees only the published models; under hidden state the aggregator sees ciphertexts only, so the final model's bound
# is an upper bound on what it learns.
OBSERVERS: dict[str, dict[str, str]] = {name: dict(preset_traits(name).observers) for name in PRESETS}
# the presets whose released update is the noisy sum / (q * clients) under Poisson participation
SUM_STACKS = tuple(name for name in PRESETS if preset_traits(name).output == "sum" and "released" in OBSERVERS[name].values())


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

    aggregate: Mechanism | None
    own_share: Mechanism | None
    uncounted: int = 0  # shares of included clients left out of `aggregate` (possibly Byzantine or colluding)


def _traits(stack: str | StackTraits) -> StackTraits:
    return preset_traits(stack) if isinstance(stack, str) else stack


def released_sampling(stack: str | StackTraits, participation: str, rate: float) -> tuple[dict, str]:
    """The keyword arguments of `compose_epsilon` that amplify the released model's epsilon by the sampling
    ({}: no amplification), and why. `rate` is q (Poisson) or, for fixed size, an honest client's inclusion
    probability (m - a) / (N - b) (capped at 1): each round holds exactly a of the N clients' b Byzantine ones, so
    the m - a other places are drawn from the N - b honest clients, more often than m / N when a / m < b / N.

    Fixed-size sampling (m - a of the N - b honest clients a round, hidden from this observer) is amplified by the bound for
    sampling without replacement (Wang, Balle and Kasiviswanathan 2019, Theorem 9: replace-one neighbours,
    the mechanism's sensitivities doubled). A replace-one guarantee implies the zero-out one at the same
    epsilon, so the smaller of it and the unamplified composition holds (`epsilon_by_observer` takes it).
    The m noise shares that reach a round's sum are as many whatever the data.

    Poisson participation gets no amplification here: every noise-bearing stack of `SUM_STACKS` adds its
    noise at the clients, so the number of noise shares in a round's sum (hence its variance, which an
    observer estimates from d coordinates) depends on who took part, and the subsampled bounds, stated for
    a noise that does not, do not apply. Only a rule over a fixed denominator is amplified at all.
    """
    if _traits(stack).output != "sum":
        return {}, f"the release ({_traits(stack).output} of the protection) is no sum over a fixed denominator: no amplification by sampling claimed"
    if participation == "poisson":
        return {}, ("Poisson participation with noise added by the clients: the number of noise shares in each sum depends on who "
                    "took part, so no amplification by sampling is claimed")
    return {"sampling_rate": rate, "sampling": "without_replacement"}, (
        f"fixed-size sampling, an honest client taking part with probability (m - a) / (N - b) = {rate:g} (a of the m places go "
        "to Byzantine clients), hidden from this observer (sampling without replacement, Wang, "
        "Balle and Kasiviswanathan 2019, Thm 9, replace-one neighbours with doubled sensitivities)")


def epsilon_by_observer(
    stack: str | StackTraits, rounds: Sequence[RoundNoise], *, delta: float, participation: str, sampling_rate: float, byzantine_clients: int,
    final_model: Callable[[], tuple[float, str]] | None = None, aborted: Sequence[Mechanism | None] = (),
) -> dict[str, ObserverEpsilon]:
    """Every observer of `stack` (a preset name or a stack's traits) and its cumulative epsilon after `rounds` (the completed ones) and `aborted`
    (the own-share mechanism of each round that aborted after client data was sent, None where it had no noise).

    Args:
        sampling_rate: q (Poisson participation) or an honest client's rate (m - a) / (N - b) (fixed size), see `released_sampling`.
        byzantine_clients: how many clients of the run may be Byzantine, for the text.
        final_model: returns (epsilon, bound and reason) of the hidden-state last iterate.
    """
    stack = _traits(stack)
    aggregates = [r.aggregate for r in rounds if r.aggregate is not None]
    shares = [r.own_share for r in rounds if r.own_share is not None]
    amplification, sampling = released_sampling(stack, participation, sampling_rate)
    missing = len(rounds) - len(aggregates)
    if stack.central_noise:
        counted = "the trusted server's Gaussian noise, scaled to the rule's sensitivity (protocols.layers.rule_sensitivity)"
    else:
        uncounted = max((r.uncounted for r in rounds), default=0)
        counted = (f"the noise of the shares that reached the output, less {uncounted} a round that may be Byzantine (of "
                   f"{byzantine_clients} in the run) or declared colluding")
    if missing:
        counted += f"; {missing} round(s) with no counted noise in the output make it infinite"
    unprotected = sum(m is None for m in aborted)
    opened = [m for m in aborted if m is not None]
    seen_aborted = (f"; {len(aborted)} aborted round(s) that may have opened data-dependent values count with each client's own "
                    f"noise share{f' ({unprotected} without noise: infinite)' if unprotected else ''}") if aborted else ""
    composed: dict[tuple, float] = {}

    def compose(at: float, extra: tuple = (), **sampling: float | str) -> float:
        key = (at, len(extra), *sorted(sampling.items()))
        if key not in composed:
            composed[key] = compose_epsilon(aggregates + list(extra), delta=at, **sampling) if not missing and at > 0 else math.inf
        return composed[key]

    out = {}
    for observer, view in stack.observers.items():
        if view == "clear":
            out[observer] = ObserverEpsilon(math.inf, delta, "no DP", "sees every update in the clear")
        elif not rounds and (observer == "released model" or view == "released") and not (view == "final model" and aborted):
            out[observer] = ObserverEpsilon(0.0, delta, "nothing released", "no round completed, so no model was released "
                                            "(an aborted round moves no released model on)")
        elif not aggregates and not shares and not (opened and observer != "released model" and view != "released"):
            out[observer] = ObserverEpsilon(math.inf, delta, "no DP", "no DP noise reached what it sees")  # (an aborted round's opened noise does, review 11)
        elif view == "own share":
            saw_aborted = observer != "released model"  # the released model saw nothing of an aborted round
            complete = len(shares) == len(rounds) and not (saw_aborted and unprotected)
            eps = compose_epsilon(shares + opened if saw_aborted else shares, delta=delta) if complete else math.inf
            why = ("each input carries its client's whole noise" if stack.local_noise else ROBUST_SELECTION) + (seen_aborted if saw_aborted else "")
            out[observer] = ObserverEpsilon(eps, delta, "local DP of each client's own noise share, composed", f"{why}; no amplification by sampling")
        elif view == "final model" and final_model is not None and aborted:  # a round aborted at the key holder may be in the model
            eps = compose(delta, tuple(opened)) if not unprotected else math.inf
            sees = "sees ciphertexts only, so the final model's bound bounds it" if observer == "server" else "sees only the final model"
            out[observer] = ObserverEpsilon(eps, delta, "RDP composition of the rounds' aggregate noise and each aborted round's own share",
                                            f"{sees}; an aborted round's update may be in the model (a key holder moves its model on with "
                                            f"its release, whether or not the reply arrives), so no last-iterate bound; {counted}{seen_aborted}")
        elif view == "final model" and final_model is not None:
            eps, bound = final_model()
            if compose(delta) < eps:  # the final model is computed from every round's aggregate: their composition bounds it too
                eps, bound = compose(delta), f"RDP composition of the rounds' aggregate noise (tighter than {bound})"
            sees = "sees ciphertexts only, so the final model's bound bounds it" if observer == "server" else "sees only the final model"
            out[observer] = ObserverEpsilon(eps, delta, bound, f"{sees}; {counted}")
        elif view == "released" and amplification:
            eps, bound = compose(delta, **amplification), "RDP composition of the rounds' aggregate noise, subsampled"
            if compose(delta) <= eps:  # a replace-one bound implies the zero-out one: the smaller of the two holds
                eps, bound = compose(delta), "RDP composition of the rounds' aggregate noise (the subsampled bound is not tighter)"
            out[observer] = ObserverEpsilon(eps, delta, bound, f"{sampling}; {counted}")
        elif view == "released":
            out[observer] = ObserverEpsilon(compose(delta), delta, "RDP composition of the rounds' aggregate noise", f"{sampling}; {counted}")
        else:
            how = "sees each round's aggregate and may know who took part: no amplification by sampling"
            eps = compose(delta, tuple(opened)) if not unprotected else math.inf
            out[observer] = ObserverEpsilon(eps, delta, "RDP composition of the rounds' aggregate noise", f"{how}; {counted}{seen_aborted}")
    return out
