"""Plaintext robust aggregation as a protocol: clients send float32 updates in the clear and the
server applies a robust rule. Its guarantee says plainly that there is no privacy."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from protocols.core.clear import ClearClient, ClearServer
from protocols.core.errors import BelowThreshold
from protocols.core.messages import Kind, encode_floats, parse_floats
from protocols.core.protocol import OpenRound, Protocol, RoundEnd
from protocols.core.report import Guarantee, LayerReport, Output, ThreatModel
from protocols.core.schedule import DropoutSchedule, Stage
from protocols.core.stack import Field, StackContext, Traits, register
from protocols.core.transport import InProcessTransport
from protocols.robust.compose import PREAGGREGATORS, RULES, aggregate
from protocols.robust.robustness import kappa, lower_bound, nnm_kappa
from secagg.randomness import Randomness, SeededRandomness


@dataclass(frozen=True)
class PlainRobust(Protocol):
    """`rule` (after `pre`) over the float32 updates of the clients that answered, tolerating f Byzantine.
    With `clip` (update units) the server first scales every received row x to x * min(1, clip / ||x||_2), so that
    a bound on the inputs' norms holds whatever a Byzantine client sends (None: the rows as received).
    With `pre="bucketing"` the permutation of the m received rows is drawn afresh each round: a 32-byte seed of
    the round's randomness, published in the report (`bucketing_seed`) only after every update arrived, so no
    client knows its bucket partners when it sends; `SeededRandomness(seed).permutation(m)` reproduces it."""

    rule: str = "krum"
    f: int = 1
    pre: str | None = None
    rule_params: dict = field(default_factory=dict)
    pre_params: dict = field(default_factory=dict)
    name: str = "plain-robust"
    clip: float | None = None

    def __post_init__(self) -> None:
        if self.clip is not None and not self.clip > 0:
            raise ValueError(f"clip must be > 0 or None, found {self.clip!r}")
        if self.rule not in RULES:
            raise ValueError(f"unknown rule {self.rule!r}; known: {sorted(RULES)}")
        if self.pre is not None and self.pre not in PREAGGREGATORS:
            raise ValueError(f"unknown pre-aggregator {self.pre!r}; known: {sorted(PREAGGREGATORS)}")
        fixed = sorted({"perm", "seed"} & set(self.pre_params)) if self.pre == "bucketing" else []
        if fixed:
            raise ValueError(f"pre_params {fixed} of bucketing: the permutation is drawn afresh each round, found {self.pre_params!r}")

    def run(self, inputs: np.ndarray, dropouts: DropoutSchedule, rng: Randomness, transport: InProcessTransport) -> Output:
        if not isinstance(inputs, np.ndarray) or inputs.ndim != 2 or not np.issubdtype(inputs.dtype, np.floating):
            raise TypeError("inputs must be a float array of shape (n, d)")
        return self.run_split(inputs, dropouts, rng, transport)

    def open_round(self, n: int, d: int, rng: Randomness) -> OpenRound:
        session = rng.bytes(8)
        shuffle = rng.bytes(32).hex() if self.pre == "bucketing" else None  # kept from the clients until the report
        rows: dict[int, np.ndarray] = {}
        server = ClearServer(n, session, Kind.FLOATS, lambda r: parse_floats(r, d), rows.__setitem__)
        return OpenRound({"session": session.hex()}, server, (Stage.MASKED_INPUT,), lambda end: self._finish(rows, n, d, end, shuffle))

    def client_role(self, i: int, row: np.ndarray, public: dict, rng: Randomness, measurements: dict) -> ClearClient:
        return ClearClient(i, Kind.FLOATS, encode_floats(np.asarray(row)), bytes.fromhex(public["session"]))

    def _finish(self, rows: dict[int, np.ndarray], n: int, d: int, end: RoundEnd, bucketing_seed: str | None) -> Output:
        received = sorted(rows)
        if len(received) <= 2 * self.f:
            raise BelowThreshold(f"{len(received)} updates arrived, robust aggregation needs > 2f = {2 * self.f}", party="server", stage="aggregate")
        with end.meter.server():
            updates = np.stack([rows[u] for u in received]).astype(np.float64)
            if self.clip is not None:
                norms = np.linalg.norm(updates, axis=1, keepdims=True)
                updates *= np.minimum(1.0, self.clip / np.maximum(norms, np.finfo(np.float64).tiny))
            pre_params = dict(self.pre_params)
            if bucketing_seed is not None:
                pre_params["perm"] = SeededRandomness(bytes.fromhex(bucketing_seed)).permutation(len(received))
            result = aggregate(updates, self.f, self.rule, pre=self.pre, pre_params=pre_params, **self.rule_params)
        m = len(received)
        coefficient = kappa(self.rule, m, self.f)
        if self.pre == "nnm" and coefficient is not None:
            coefficient = nnm_kappa(m, self.f, coefficient)
        elif self.pre is not None:
            coefficient = None
        guarantee = Guarantee(
            threat_model=ThreatModel.NONE,
            server_learns=f"every update in the clear ({m} of {n})",
            collusion="none needed: the server sees everything",
            dropout_tolerance=max(n - 2 * self.f - 1, 0),
            exact=True,
            parameters={"n": n, "d": d, "rule": self.rule, "pre": self.pre or "none", "f": self.f, "server_clip": self.clip or "none",
                        "kappa": "unknown" if coefficient is None else round(coefficient, 4), "kappa_lower_bound": round(lower_bound(m, self.f), 4),
                        **({"bucketing_seed": bucketing_seed} if bucketing_seed is not None else {})},
            notes="updates travel as float32; the rule runs in float64",
        )
        report = LayerReport(self.name, end.meter.cost(end.transport, rounds=1), guarantee)
        chosen = self.rule != "mean" or self.clip is not None or self.pre is not None  # a rule over the inputs it sees
        return Output(result, tuple(received), (report,), tuple(end.rejected), chosen_from_inputs=chosen)


CLEAR = {"server": "clear", "released model": "released"}


@register("plain", leaf=True, traits=Traits(observers=CLEAR, output="mean"), about="the mean in the clear (no privacy, no robustness)")
def _plain(values: dict, ctx: StackContext) -> Protocol:
    return PlainRobust(rule="mean", f=0)


@register("robust", leaf=True, fields={
    "rule": Field(str, "krum", choices=tuple(sorted(RULES))), "f": Field(int, None, lambda v: v >= 0, ">= 0"),
    "pre": Field(str, "none", choices=("none", *sorted(PREAGGREGATORS))), "bucket": Field(int, 2, lambda v: v >= 1, ">= 1")},
    traits=Traits(observers=CLEAR, output="mean", robust=True),
    about="a robust rule in the clear after an optional pre-aggregator (nnm, or bucketing of `bucket` rows, permuted afresh each round); f: the context's if unset")
def _robust(values: dict, ctx: StackContext) -> Protocol:
    pre = None if values["pre"] == "none" else values["pre"]
    f = ctx.f if values["f"] is None else values["f"]
    if pre == "bucketing":  # the rule runs on the buckets' means (review 12)
        ctx.need_inputs({"bucket": ("2f + 1", 2 * f + 1)}, rows=-(-ctx.participants // values["bucket"]),
                        given=f"{ctx.participants} participants in buckets of {values['bucket']}: the rule runs on the buckets' means")
    else:
        ctx.need_inputs({"f": ("2f + 1", 2 * f + 1)})
    return PlainRobust(rule=values["rule"], f=f, pre=pre,
                       pre_params={"s": values["bucket"]} if pre == "bucketing" else {})
