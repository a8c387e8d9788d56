"""Krum and Multi-Krum over CKKS ciphertexts, with the non-colluding key holder of `protocols.he.aggregation`.

    client i:   Enc(x_i) (preset ckks-8192: depth 2), signed                     -> aggregator
    aggregator: relays the signed inputs with a SCALARS request                   -> key holder
    key holder: attenuates every input's padding slots (to ~1e-10 of their value), computes the encrypted squared norms and
                distances itself (`secagg.he_distances`), rejects inputs over norm_bound, checks that
                the distances are Euclidean, releases one flag a client and the distances among the
                accepted (rounded, flooded); records what its own rule selects on those values
    aggregator: runs the rule on the released distances; asks for the sum of the selected inputs
    key holder: checks that the selection is the one it recorded, recomputes the sum of the selected
                signed inputs, decrypts, rounds and floods it

The result is the sum over `Output.included` = the selected clients (one for Krum: the key holder
then releases one client's update, which is what Krum outputs, so its policy needs min_clients = 1).
Clients over the norm bound are named in `Output.rejected` (`InvalidInput`). What is validated: the
squared norm of each input as its ciphertext encodes it on the d real slots. What is not: without a
proof of ciphertext well-formedness, a Byzantine client can still send any vector of norm <= norm_bound
(and CKKS values wrapped around the modulus are caught only heuristically, see `protocols.he.key_holder`), and
privacy assumes honestly generated ciphertexts: clients the aggregator lists alone can send
ciphertexts of norm < norm_bound that decrypt to a function of the secret key (e.g. (0, K) with a
small K), and the selected sum then exposes the key.
The key holder needs Galois keys (about 33 MB at N = 8192), generated once with its keys.
The round splits (`open_round` / `client_role`): both requests go through `RoundEnd.key_holder` when the
key holder is elsewhere (a Flower SuperNode), whose rule, f, m and norm_bound are its own policy's; an
aggregator that runs others is refused before anything is decrypted (`KeyHolderPolicy.check_asked`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from protocols.core.errors import BelowThreshold, InvalidInput
from protocols.core.protocol import Protocol, RoundEnd
from protocols.core.report import LayerReport, Output
from protocols.core.stack import Field, StackContext, StackError, Traits, register
from protocols.he.aggregation import HeAggregation, HeRound, check_build_headroom
from protocols.he.key_holder import accepted_distances
from protocols.he.messages import Target
from protocols.robust.robustness import kappa, lower_bound
from protocols.robust.rules import krum_select
from secagg.he import ckks_encodable


@dataclass
class CKKSRobust(HeAggregation):
    """`rule` (krum or multi_krum, averaging `m` inputs, default accepted - f) over CKKS-encrypted float
    inputs of L2 norm <= `norm_bound` (checked by the key holder up to its CKKS error: accepted inputs have norm <= 1.01
    norm_bound, and a norm_bound too small for that is refused; also sizes the noise on distances)."""

    rule: str = "multi_krum"
    f: int = 1
    m: int | None = None
    norm_bound: float = 1.0
    preset: str = "ckks-8192"
    honest_clip: float | None = None  # set by the stack: the clip outside, when float noise lies between (review 21)
    honest_noise_std: float = 0.0  # and that noise's stddev a coordinate (update units)
    name: str = "ckks-robust"
    needs_galois = True
    round_type = "robust"

    def range_note(self) -> str:
        """Robust rounds: no client headroom check (`check_encoding` checks only that an input encodes); the key holder's norm
        check bounds each accepted input, and the sums are of fresh ciphertexts, decrypted at the preset's top level."""
        honest = "its clip plus its noise (see the notes)" if self.honest_noise_std else "its clip"
        return ("numeric_error holds for inputs within the key holder's norm check (each accepted input's norm at most "
                f"1.01 norm_bound, an honest client's is {honest}) and for the selected sum of fresh ciphertexts, decrypted at the "
                "top level of the preset; clients check only that their input encodes (below "
                f"{ckks_encodable(self.params):.6g} a slot), not a headroom against n")

    def honest_rejection_bound(self, d: int) -> float:
        """P[an honest input is over norm_bound] a client and round, under float noise between its clip c and this layer:
        ||x + g|| <= c + ||g||, and for g ~ N(0, s**2 I_d) Gaussian concentration (||.|| is 1-Lipschitz, E||g|| <= s sqrt(d))
        gives P[||g|| >= s sqrt(d) + t] <= exp(-t**2 / (2 s**2)); 1 when norm_bound <= c + s sqrt(d); 0 without noise."""
        if not self.honest_noise_std or self.honest_clip is None:
            return 0.0
        t = self.norm_bound - self.honest_clip - self.honest_noise_std * math.sqrt(d)
        return math.exp(-(t**2) / (2 * self.honest_noise_std**2)) if t > 0 else 1.0

    def __post_init__(self) -> None:
        super().__post_init__()  # the policy checks rule, f, m, norm_bound
        if self.params.depth < 2:
            raise ValueError(f"CKKSRobust needs a CKKS preset of depth >= 2, found {self.preset!r}")
        self.policy.check_headroom(self.params.headroom_bits)

    def survivors_needed(self) -> int:
        """Inputs a round needs (none rejected): > 2f for the rule, >= min_clients at the aggregator, and the key
        holder's selection between min_clients and the accepted count (m, or accepted - f for Multi-Krum's default)."""
        p = self.policy
        selection = 1 if p.rule == "krum" else (p.m if p.m is not None else p.min_clients + p.f)
        return max(2 * p.f + 1, p.min_clients, selection)

    def _honest_noise_note(self, d: int) -> str:
        if not self.honest_noise_std:
            return ""
        p = self.honest_rejection_bound(d)
        return (f"; an honest input carries the noise of the layers between its clip {self.honest_clip:g} and this layer (stddev "
                f"{self.honest_noise_std:.4g} a coordinate): it is over norm_bound, and rejected as a Byzantine one is, with probability "
                + (f"at most {p:.3g} a client and round (Gaussian concentration)" if p < 1 else
                   f"that no bound limits (norm_bound {self.norm_bound:g} <= clip + stddev sqrt(d) = "
                   f"{self.honest_clip + self.honest_noise_std * math.sqrt(d):.4g}: most honest inputs are rejected)"))

    def _rule_policy(self) -> dict:
        return {"rule": self.rule, "f": self.f, "m": self.m, "norm_bound": self.norm_bound}

    def _finish(self, current: HeRound, end: RoundEnd) -> Output:
        """Two requests to the key holder: SCALARS (flags and distances), then SELECTED_SUM of the rule's selection."""
        collector, n, d = current.collector, current.n, current.d
        ids = sorted(collector.inputs)
        m = len(ids)
        if m <= 2 * self.f or m < self.min_clients:
            raise BelowThreshold(f"{m} inputs, the rule needs > 2f = {2 * self.f} (and >= {self.min_clients})", party="server", stage="aggregate")
        with end.meter.server():
            request = self._request(collector, Target.SCALARS, b"")
        released, distance_bound = self._ask(request, current, end, m * (m + 1) // 2)
        with end.meter.server():
            accepted, dist = accepted_distances(ids, released)
            rejected = list(end.rejected) + [InvalidInput(f"client {u}: squared norm over norm_bound**2 = {self.norm_bound**2}", party="key holder",
                                                          stage="decrypt") for u in ids if u not in accepted]
            k = len(accepted)
            chosen = krum_select(dist, self.f, self.policy.selected_count(k))
            selected = [accepted[i] for i in chosen]
            second = self._request(collector, Target.SELECTED_SUM, b"", clients=selected)
        result, bound = self._ask(second, current, end, d)
        coefficient = kappa(self.rule, k, self.f)
        guarantee = self.guarantee(
            n, d, len(selected), bound, client_keys=current.source,
            server_learns=(f"which of the {m} inputs are within norm_bound, the {k * (k - 1) // 2} pairwise squared distances of the {k} accepted "
                           "(rounded, flooded), the selected set and the sum of the selected inputs; the key holder receives every "
                           "client's own ciphertext and can decrypt every input, not only their squared norms"),
            rule=self.rule, f=self.f, inputs=m, accepted=k, norm_bound=self.norm_bound, kappa="unknown" if coefficient is None else round(coefficient, 4),
            kappa_lower_bound=round(lower_bound(k, self.f), 4), distance_error_bound=distance_bound, **self.sizes(collector, d),
            distance_release_noise_std=2.0**self.policy.flood_bits * distance_bound,
        )
        guarantee = replace(guarantee, dropout_tolerance=max(n - self.survivors_needed(), 0), collusion=guarantee.collusion + (
            "; clients colluding with the aggregator learn their released distance to each honest input, so d + 1 of them "
            "(affinely independent, e.g. the origin and t e_j) locate an accepted honest input by trilateration, within the "
            "flooding noise (std distance_release_noise_std / (2 t) a coordinate)"), notes=guarantee.notes + (
            "; validated: each input's squared norm on its d real slots (padding slots attenuated to ~1e-10 of their value), and that the distances are Euclidean; "
            "not validated: without a proof of well-formedness a Byzantine client can still send any vector within norm_bound"
            "; an outer DP noise layer counts each client's own noise share only: the selection and the released distances are "
            "computed from the noisy inputs" + self._honest_noise_note(d)))
        report = LayerReport(self.name, end.meter.cost(end.transport, rounds=3), guarantee)
        return Output(result, tuple(selected), (report,), tuple(rejected), chosen_from_inputs=True)


@register("ckks-robust", leaf=True, fields={
    "rule": Field(str, "multi_krum", choices=("krum", "multi_krum")), "f": Field(int, None, lambda v: v >= 0, ">= 0"),
    "m": Field(int, None, lambda v: v >= 1, ">= 1"), "norm_bound": Field(float, None, lambda v: v > 0, "> 0"),
    "min_clients": Field(int, None, lambda v: v >= 1, ">= 1 (default: 1 for krum, which releases one input; 2 for multi_krum)")},
    traits=Traits(observers={"server": "own share", "key holder": "own share", "released model": "own share"}, output="sum", robust=True, splits=True),
    about="Krum or Multi-Krum over CKKS ciphertexts (the key holder releases distances); norm_bound: the clip bound outside if unset, "
          "and at least it")
def _ckks_robust(values: dict, ctx: StackContext) -> Protocol:
    if values["norm_bound"] is None and not ctx.clip_bounds_input:  # the default below would refuse every noisy input (review 9)
        raise StackError("needs norm_bound: a layer outside it (noise shares, stochastic quantization) changes the inputs after the clip, "
                         "so the clip bound does not bound what reaches the key holder; set norm_bound above the clip plus that change",
                         layer=ctx.layer, position=ctx.position, field="norm_bound")
    if ctx.clip_dropped_by:  # review 21: no bound from the clip outside holds, so no norm_bound keeps every honest input
        raise StackError(f"needs a clip inside {ctx.clip_dropped_by}: the key holder would reject honest inputs past any norm_bound; "
                         "put clip(bound=B) after it, and norm_bound >= B or unset", layer=ctx.layer, position=ctx.position, field="norm_bound")
    if values["norm_bound"] is not None and ctx.clip is not None and values["norm_bound"] < ctx.clip:
        raise StackError(f"norm_bound {values['norm_bound']:g} is below the clip {ctx.clip:g} outside it: the key holder would reject "
                         "honest clipped inputs with a norm between the two as Byzantine; set norm_bound >= the clip (or leave it unset)",
                         layer=ctx.layer, position=ctx.position, field="norm_bound")
    bound = values["norm_bound"] if values["norm_bound"] is not None else ctx.require("clip", "a clip layer outside it or a norm_bound")
    min_clients = values["min_clients"] if values["min_clients"] is not None else (1 if values["rule"] == "krum" else 2)
    noisy = {"honest_clip": ctx.clip, "honest_noise_std": ctx.noise_std} if ctx.noise_std else {}
    protocol = check_build_headroom(CKKSRobust(rule=values["rule"], f=ctx.f if values["f"] is None else values["f"], m=values["m"],
                                               norm_bound=bound, min_clients=min_clients, **noisy), ctx)  # one clipped input encodes (review 19)
    selection = "m" if protocol.rule == "multi_krum" and protocol.m is not None else "min_clients"  # what sets the key holder's selection
    ctx.need_inputs({"f": ("2f + 1", 2 * protocol.f + 1), selection: ("survivors_needed()", protocol.survivors_needed())})  # review 13
    return protocol
