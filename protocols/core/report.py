"""The per-layer report: what a layer cost (measured) and what it guarantees (stated).

A round returns an `Output`: the aggregate, the clients whose inputs it contains, and a flat
tuple of `LayerReport`s, innermost layer first (each wrapping layer appends its own).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np


class ThreatModel(enum.Enum):
    LOCAL = "local transform: each client applies it to its own update; no trust involved"
    NONE = "none: the server sees every input"
    HONEST_BUT_CURIOUS_SERVER = "honest-but-curious server"
    ACTIVE_SERVER = "actively malicious server (signatures, consistency check)"


@dataclass(frozen=True, slots=True, kw_only=True)
class Cost:
    """Measured cost of one layer in one round.

    Seconds are CPU seconds (`time.thread_time`) spent inside each party's handlers; bytes are the
    lengths of the serialized frames that crossed the transport (up: client -> server).
    Means and maxima are over clients that took part in at least one stage.
    """

    client_seconds_mean: float
    client_seconds_max: float
    server_seconds: float
    bytes_up_mean: float
    bytes_up_max: int
    bytes_down_mean: float
    bytes_down_max: int
    rounds: int  # client-server interaction rounds (request + reply = 1)
    client_seconds_by_stage: dict[str, float] = field(default_factory=dict)  # mean over clients active in the stage
    server_seconds_by_stage: dict[str, float] = field(default_factory=dict)
    party_seconds: dict[str, float] = field(default_factory=dict)  # other non-client parties: "key holder", "second server", "dealer"
    bytes_between: dict[str, int] = field(default_factory=dict)  # "server -> key holder": bytes between non-client parties

    @classmethod
    def local(cls, client_seconds: np.ndarray, server_seconds: float) -> "Cost":
        """The cost of a transform layer: CPU seconds only (it sends nothing itself, and adds no round)."""
        return cls(
            client_seconds_mean=float(np.mean(client_seconds)) if len(client_seconds) else 0.0,
            client_seconds_max=float(np.max(client_seconds)) if len(client_seconds) else 0.0,
            server_seconds=server_seconds,
            bytes_up_mean=0.0, bytes_up_max=0, bytes_down_mean=0.0, bytes_down_max=0, rounds=0,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Guarantee:
    """What a layer guarantees, stated from its parameters and from what happened in the round."""

    threat_model: ThreatModel
    server_learns: str  # what the server learns, beyond its own inputs
    collusion: str  # how many clients may collude with the server without learning more
    dropout_tolerance: int  # clients that may vanish (worst case) and the round still completes
    exact: bool  # the result equals the true aggregate of the included inputs (mod 2**b where stated)
    numeric_error: float = 0.0  # max abs error vs the exact aggregate, in the layer's units
    parameters: dict[str, int | float | str] = field(default_factory=dict)
    dp_mechanism: object | None = None  # a protocols.accounting mechanism: the noise that reached the output
    epsilon: float | None = None  # this round's epsilon at `delta` under distributed DP
    delta: float | None = None
    notes: str = ""


@dataclass(frozen=True, slots=True)
class LayerReport:
    layer: str
    cost: Cost
    guarantee: Guarantee


@dataclass(frozen=True, slots=True)
class Output:
    """A round's result. `included` lists the clients whose inputs are in `result`; `weights`, when
    not empty, the weight each of them has in it (a robust rule may scale inputs down); `rejected` the protocol
    errors raised by malformed, replayed or misdirected messages the round survived, and by inputs that
    failed validation (`InvalidInput`, naming the client). `chosen_from_inputs`: `included` and `weights` were
    computed from the inputs themselves (a robust rule's selection, clipping weights, distances): an outer noise
    layer then counts each client's own noise share only, since the output and the selection are a function of
    the individually noised inputs, and no bound on the noise of the selected shares alone is known to hold."""

    result: np.ndarray
    included: tuple[int, ...]
    reports: tuple[LayerReport, ...] = ()
    rejected: tuple[Exception, ...] = ()
    weights: tuple[float, ...] = ()
    chosen_from_inputs: bool = False

    @property
    def whole_inputs(self) -> int:
        """How many included inputs' noise shares reach the output whole, were the weights fixed in advance: those with
        the largest weight c_max, when it is at least 1 (else none). Relative to one input's sensitivity, at most c_max
        times the clip bound, each of them is a whole share, and the other inputs' noise only adds (post-processing);
        weights above 1 come from NNM rows and from centered clipping's later iterations. Weights chosen from the
        inputs (`chosen_from_inputs`) are not fixed: a noise layer then counts one share (`protocols.layers.noise`)."""
        if not self.weights:
            return len(self.included)
        top = max(1.0, max(self.weights))
        return sum(1 for w in self.weights if w >= top * (1 - 1e-12))

    def then(self, result: np.ndarray, report: LayerReport) -> "Output":
        return Output(result, self.included, self.reports + (report,), self.rejected, self.weights, self.chosen_from_inputs)


def format_reports(reports: tuple[LayerReport, ...]) -> str:
    """Renders reports as a Markdown table, one row a layer (innermost first), then each guarantee."""
    head = "| layer | client s (mean/max) | server s | up B/client (mean/max) | down B/client (mean/max) | rounds |"
    lines = [head, "|" + "---|" * 6]
    for r in reports:
        c = r.cost
        lines.append(
            f"| {r.layer} | {c.client_seconds_mean:.4f} / {c.client_seconds_max:.4f} | {c.server_seconds:.4f} "
            f"| {c.bytes_up_mean:,.0f} / {c.bytes_up_max:,} | {c.bytes_down_mean:,.0f} / {c.bytes_down_max:,} | {c.rounds} |"
        )
    for r in reports:
        g = r.guarantee
        params = ", ".join(f"{k}={v}" for k, v in g.parameters.items())
        lines += [
            "",
            f"**{r.layer}** — threat model: {g.threat_model.value}",
            f"- server learns: {g.server_learns}",
            f"- collusion: {g.collusion}",
            f"- dropouts tolerated (worst case): {g.dropout_tolerance}",
            f"- exact: {g.exact}" + (f", numeric error <= {g.numeric_error:g}" if g.numeric_error else ""),
        ]
        if params:
            lines.append(f"- parameters: {params}")
        if r.cost.party_seconds or r.cost.bytes_between:
            parts = [f"{k} {v:.4f} s" for k, v in r.cost.party_seconds.items()] + [f"{k} {v:,} B" for k, v in r.cost.bytes_between.items()]
            lines.append(f"- other parties: {', '.join(parts)}")
        if g.epsilon is not None:
            lines.append(f"- distributed DP this round: epsilon = {g.epsilon:.4g} at delta = {g.delta:g} ({type(g.dp_mechanism).__name__})")
        if g.notes:
            lines.append(f"- notes: {g.notes}")
    return "\n".join(lines)
