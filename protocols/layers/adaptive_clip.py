"""Adaptive clipping to a target quantile of the client norms (Andrew et al., NeurIPS 2021).

Round t clips every update to C_t (an `L2Clip` around the inner stack, with its own report row). Each client also reports the bit b_i = [||x_i|| <= C_t]; the bits are
summed by their own `count` protocol (a ring protocol, normally a distributed-noise layer over secure
aggregation, so the server sees only a noisy count), and the server updates the norm geometrically:

    C_{t+1} = C_t * exp(-learning_rate * (b_bar - target_quantile)),  b_bar = noisy count / included clients.

The count is a query of its own with sensitivity 1: its mechanism and epsilon are reported in this
layer's guarantee, to be composed with the update's. The inner stack's sensitivity must cover C_t
(rebuild it each round with `norm`, or give it a clip >= every C_t). A fixed clip outside it stays the bound of what
reaches the layers inside (clipping to C_t only shrinks); without one, the HE layers inside need a clip of their own.

The round splits (`protocols.core.protocol`) when the count and the inner stack do: the count's round
and the clipped update's run side by side in one (`protocols.core.parallel`), and C_t travels in the
public parameters, so remote clients clip to the norm the server holds. The layer keeps no per-client
state: the bits are drawn afresh each round from the rows of that round.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from protocols.core.driver import ClientRole, CostMeter
from protocols.core.measurements import Seconds
from protocols.core.parallel import PairClient, PairServer
from protocols.core.protocol import OpenRound, Protocol, RoundEnd, matrix_shape
from protocols.core.report import Cost, Guarantee, LayerReport, Output, ThreatModel
from protocols.core.schedule import DropoutSchedule
from protocols.core.stack import Field, LayerSpec, StackContext, StackError, Traits, build, register, uncounted
from protocols.core.transport import InProcessTransport
from protocols.dp.samplers import MAX_POISSON_MEAN
from protocols.layers.clip import L2Clip
from protocols.layers.noise import DistributedNoise
from secagg.encoding import FixedPoint
from secagg.randomness import Randomness
from secagg.ring import Ring

COUNT = "adaptive-clip count"  # a client's measurements of the count protocol's layers, apart from the update's
COUNT_WRAP_PROBABILITY = 1e-6  # a round's noisy count leaving the signed count ring: refused at build above it


@dataclass(eq=False)
class AdaptiveClip(Protocol):
    """Clips to `norm` (updated every round) and tracks the `target_quantile` of the client norms."""

    norm: float
    target_quantile: float
    learning_rate: float
    count: Protocol
    inner: Protocol
    name: str = "adaptive-clip"

    def __post_init__(self) -> None:
        if not self.norm > 0 or not 0 < self.target_quantile < 1 or not self.learning_rate > 0:
            raise ValueError(f"need norm > 0, 0 < target_quantile < 1, learning_rate > 0; found {self.norm}, {self.target_quantile}, {self.learning_rate}")

    @property
    def splits(self) -> bool:
        return self.count.splits and self.inner.splits

    def client_state(self, client: int) -> dict[str, np.ndarray]:
        return {**self.count.client_state(client), **self.inner.client_state(client)}

    def reported(self) -> dict:
        """This layer's seconds, the count protocol's report under `COUNT`, and the clipped update's."""
        return {self.name: {"seconds": Seconds}, COUNT: self.count.reported(), **L2Clip(self.norm, self.inner).reported()}

    def restore_client_state(self, client: int, state: dict[str, np.ndarray]) -> None:
        self.count.restore_client_state(client, state)
        self.inner.restore_client_state(client, state)

    def _bits(self, rows: np.ndarray, norm: float) -> np.ndarray:
        """(n, 1) ring elements b_i = [||x_i||_2 <= norm] of the count protocol."""
        return (np.linalg.norm(np.atleast_2d(rows), axis=1) <= norm).astype(Ring(self.count.bits).dtype)[:, None]

    def run(self, inputs: np.ndarray, dropouts: DropoutSchedule, rng: Randomness, transport: InProcessTransport) -> Output:
        if self.splits:
            return self.run_split(inputs, dropouts, rng, transport)
        n = matrix_shape(inputs)[0]  # a protocol that cannot split: the count and the update as two rounds here
        start = time.thread_time()
        bits = self._bits(inputs, self.norm)
        own = (time.thread_time() - start) / n
        counted = self.count.run(bits, dropouts, rng.fork("count"), InProcessTransport(n, rng.fork("count links")))
        out = L2Clip(self.norm, self.inner).run(inputs, dropouts, rng, transport)
        wire = counted.reports[0].cost  # the count's bytes and rounds: those of its protection protocol
        cost = Cost(client_seconds_mean=own + sum(r.cost.client_seconds_mean for r in counted.reports),
                    client_seconds_max=own + sum(r.cost.client_seconds_max for r in counted.reports),
                    server_seconds=sum(r.cost.server_seconds for r in counted.reports), bytes_up_mean=wire.bytes_up_mean,
                    bytes_up_max=wire.bytes_up_max, bytes_down_mean=wire.bytes_down_mean, bytes_down_max=wire.bytes_down_max, rounds=wire.rounds)
        return self._update(n, out, counted, cost, "the count ran as its own round")

    def open_round(self, n: int, d: int, rng: Randomness) -> OpenRound:
        norm = self.norm
        count = self.count.open_round(n, 1, rng.fork("count"))
        update = L2Clip(norm, self.inner).open_round(n, d, rng)
        server = PairServer((count, update), n)
        public = {"layer": self.name, "norm": norm, "count": count.public, "inner": update.public}

        def ready(measurements: dict[int, dict]) -> None:
            if count.clients_ready is not None:
                count.clients_ready({i: m.get(COUNT, {}) for i, m in measurements.items()})
            if update.clients_ready is not None:
                update.clients_ready(measurements)

        def finish(end: RoundEnd) -> Output:
            counted = count.finish(RoundEnd(end.meter, end.transport, list(end.rejected), {i: m.get(COUNT, {}) for i, m in end.measurements.items()},
                                            end.dropouts, end.key_holder))
            out = update.finish(end)
            meter = CostMeter(n)  # this layer's CPU (the bits) and the count's frames
            for i, m in end.measurements.items():
                meter.record_client(i, m.get(self.name, {}).get("seconds", 0.0))
            cost = meter.cost(server.part(0), rounds=counted.reports[0].cost.rounds)
            return self._update(n, out, counted, cost, "the count ran beside the update in the same stages: its bytes here are its frames "
                                "alone (the inner protocol's figures count all the round carried, and its CPU)")

        return OpenRound(public, server, server.stages, finish, ready if count.clients_ready or update.clients_ready else None,
                         update.use_roster)  # an inner protocol whose clients sign (two-server) is seated as if alone

    def client_role(self, i: int, row: np.ndarray, public: dict, rng: Randomness, measurements: dict, **identity) -> ClientRole:
        """The count's role on this client's bit and the inner protocol's on its clipped row; `identity` (a signing inner
        protocol's keyword) goes to the inner one."""
        if public.get("layer") != self.name:
            raise ValueError(f"public parameters are for layer {public.get('layer')!r}, not {self.name!r}")
        norm = public.get("norm")
        if isinstance(norm, bool) or not isinstance(norm, (int, float)) or not math.isfinite(norm) or not norm > 0:
            raise ValueError(f"public parameter norm must be a finite number > 0, found {norm!r}")
        start = time.thread_time()
        bit = self._bits(np.asarray(row, dtype=np.float64), float(norm))[0]
        measurements[self.name] = {"seconds": time.thread_time() - start}
        counting = self.count.client_role(i, bit, public["count"], rng.fork("count"), measurements.setdefault(COUNT, {}))
        return PairClient((counting, L2Clip(float(norm), self.inner).client_role(i, row, public["inner"], rng, measurements, **identity)), i)

    def _update(self, n: int, out: Output, counted: Output, cost: Cost, how: str) -> Output:
        """Moves the norm by the noisy count (C_{t+1} = C_t exp(-lr (b_bar - q))) and appends this layer's report."""
        noisy = float(FixedPoint(1.0, Ring(self.count.bits)).decode(counted.result)[0])  # the signed noisy count
        used = self.norm
        fraction = noisy / max(len(counted.included), 1)
        self.norm = used * math.exp(-self.learning_rate * (fraction - self.target_quantile))
        noise = next((r.guarantee for r in counted.reports if r.guarantee.dp_mechanism is not None), None)
        guarantee = Guarantee(
            threat_model=ThreatModel.LOCAL,
            server_learns="a noisy count of the clients within the clip norm (through the count protocol)",
            collusion="as the count protocol's",
            dropout_tolerance=n,
            exact=False,
            parameters={"norm_used": round(used, 6), "next_norm": round(self.norm, 6), "target_quantile": self.target_quantile,
                        "noisy_fraction_within": round(fraction, 4)},
            dp_mechanism=noise.dp_mechanism if noise else None,
            epsilon=noise.epsilon if noise else math.inf,
            delta=noise.delta if noise else None,
            notes=f"epsilon is the count query's alone (sensitivity 1); compose it with the update's; {how}",
        )
        return out.then(out.result, LayerReport(self.name, cost, guarantee))


@register("adaptive-clip", fields={
    "norm": Field(float, check=lambda v: v > 0, expect="> 0"), "target_quantile": Field(float, 0.5, lambda v: 0 < v < 1, "in (0, 1)"),
    "learning_rate": Field(float, 0.2, lambda v: v > 0, "> 0"), "count": Field(str, "secagg+", choices=("secagg+", "secagg")),
    "count_bits": Field(int, 16, lambda v: 2 <= v <= 62, "in [2, 62]"), "count_noise_multiplier": Field(float, 0.0, lambda v: v >= 0, ">= 0")},
    traits=Traits(clips=True, splits=True),
    about="clip to a norm that tracks target_quantile of the client norms; the count is summed by `count` (with Skellam "
          "noise of count_noise_multiplier, sensitivity 1, if > 0); the norm moves every round, so the layers inside it need a "
          "fixed clip, outside it (clipping to the norm only shrinks) or inside")
def _adaptive_clip(values: dict, ctx: StackContext, inner) -> Protocol:
    count = build((LayerSpec.of(values["count"], bits=values["count_bits"]),), ctx.replace(rest=(), position=0), inputs="ring")
    # a clip outside still bounds what reaches the layers inside (clipping to C_t only shrinks); without one, C_t moves (review 22)
    update = inner(ctx if ctx.clip is not None else ctx.replace(clip_dropped_by="adaptive-clip (its norm moves every round)"))
    z = values["count_noise_multiplier"]
    if z**2 / (2 * ctx.survivors) > MAX_POISSON_MEAN:  # each share is Sk(mu, mu), mu = z**2 / (2 m): the sampler's range (review 13)
        raise StackError(f"count_noise_multiplier = {z:g} gives each count share Skellam of mu = z**2 / (2 m) = {z**2 / (2 * ctx.survivors):.3g} "
                         f"for m = {ctx.survivors} survivors, above MAX_POISSON_MEAN = {MAX_POISSON_MEAN:.3g} (the sampler's exact range): it must "
                         f"be at most sqrt(2 m MAX_POISSON_MEAN) = {math.sqrt(2 * ctx.survivors * MAX_POISSON_MEAN):.4g}",
                         layer=ctx.layer, position=ctx.position, field="count_noise_multiplier")
    wrap = NormalDist().inv_cdf(1 - COUNT_WRAP_PROBABILITY / 2) * z * math.sqrt(ctx.participants / ctx.survivors)  # k sd of every share
    if ctx.participants + wrap >= 2 ** (values["count_bits"] - 1):  # the signed count must not wrap (the norm would drift on garbage)
        need = math.ceil(math.log2(ctx.participants + wrap)) + 2
        raise StackError(f"count_bits = {values['count_bits']} cannot hold the noisy count: {ctx.participants} participants + {wrap:.4g} "
                         f"(count noise at {COUNT_WRAP_PROBABILITY:g} wrap probability) reaches 2**{values['count_bits'] - 1}; use count_bits "
                         f">= {need} or less count noise", layer=ctx.layer, position=ctx.position, field="count_bits")
    if z > 0:  # the same clients as the update's: the colluders either protection declares know their count shares (review 11)
        count = DistributedNoise("skellam", z**2 / ctx.survivors, 1.0, 1.0, count, delta=ctx.delta,
                                 assume_colluding=max(uncounted(ctx, count), uncounted(ctx, update)))
    return AdaptiveClip(values["norm"], values["target_quantile"], values["learning_rate"], count, update)
