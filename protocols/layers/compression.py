"""Compression layers, each with its server-side inverse and its effect stated in the guarantee.

- `RandK`: every client keeps the same k coordinates, drawn per round from public randomness, so the
  compressed vectors still align under masking or sharing; the server scatters the sum and scales by
  d/k (unbiased; the scaling happens at the server so the clients' L2 sensitivity is unchanged).
- `TopK`: each client keeps its k largest coordinates of (update + error memory) and remembers the rest
  (error feedback, Stich et al., NeurIPS 2018). Client-chosen positions would leak and would not align
  under masking, so this layer sends the sparse vector densely (zeros elsewhere): the protection
  layer hides the positions, and no bytes are saved.
- `StochasticQuantize`: unbiased stochastic rounding of each coordinate to one of 2**q levels over the
  public range [-clip, clip], sent as integers in a ring of q + ceil(log2 n) bits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from protocols.core.identity import client_id
from protocols.core.protocol import Protocol, RingProtocol
from protocols.core.report import Guarantee, Output
from protocols.core.stack import Field, StackContext, StackError, register
from protocols.dp.samplers import uniform
from protocols.layers.transform import TransformLayer, local_guarantee
from secagg.randomness import Randomness
from secagg.ring import Ring


@dataclass(eq=False)
class RandK(TransformLayer):
    """Keep k of d coordinates, the same for all clients in a round (public per-round seed)."""

    k: int
    inner: Protocol
    name: str = "rand-k"

    def prepare(self, n: int, d: int, rng: Randomness) -> None:
        self._n, self._d = n, d
        if not 1 <= self.k <= self._d:
            raise ValueError(f"k must be in [1, d={self._d}], found {self.k}")
        self._keep = np.sort(rng.fork("rand-k coordinates").permutation(self._d)[: self.k])

    def output_dim(self, d: int) -> int:
        return self.k

    def encode(self, client: int, row: np.ndarray, rng: Randomness) -> np.ndarray:
        return np.asarray(row, dtype=np.float64)[self._keep]

    def decode(self, aggregate: np.ndarray, included: tuple[int, ...]) -> np.ndarray:
        out = np.zeros(self._d)
        out[self._keep] = np.asarray(aggregate, dtype=np.float64) * (self._d / self.k)
        return out

    def guarantee(self, out: Output, totals: dict[str, float]) -> Guarantee:
        # decoding multiplies the inner sum by d/k: the inner layers' summed error E becomes (d/k) E (review 16: none stated)
        inner = sum(r.guarantee.numeric_error for r in out.reports)
        return local_guarantee(self._n, exact=False, numeric_error=(self._d / self.k - 1) * inner,
                               parameters={"k": self.k, "d": self._d, "variance_factor": round(self._d / self.k, 3),
                                           "bytes_saved_fraction": round(1 - self.k / self._d, 4)},
                               notes="unbiased: E[decoded sum] = true sum; E||error||^2 <= (d/k - 1) ||sum||^2 (sampling, not in "
                                     "numeric_error, which bounds the inner layers' error scaled by d/k against the exact rand-k sum)")


@dataclass(eq=False)
class TopK(TransformLayer):
    """Top-k with error feedback: client c sends the k largest-magnitude coordinates of v = x + e_c and keeps
    e_c <- v - sent. `memory[c]` is e_c, keyed by c the client's persistent id (`protocols.core.identity`), so
    with client sampling a residual goes back to its own client whatever row it has. In process every
    client's memory lives in this object; with clients on their own nodes each node keeps its own
    (`client_state`, see `fl.flower_engine`) and the server's object holds none."""

    k: int
    inner: Protocol
    name: str = "top-k"
    memory: dict[int, np.ndarray] = field(default_factory=dict)

    def prepare(self, n: int, d: int, rng: Randomness) -> None:
        self._n, self._d = n, d
        if not 1 <= self.k <= self._d:
            raise ValueError(f"k must be in [1, d={self._d}], found {self.k}")

    def encode(self, client: int, row: np.ndarray, rng: Randomness) -> np.ndarray:
        cid = client_id(client)
        residual = self.memory.get(cid, np.zeros(self._d))
        if residual.shape != (self._d,):
            raise ValueError(f"top-k memory of client {cid} has shape {residual.shape}, rows have d={self._d}")
        v = np.asarray(row, dtype=np.float64) + residual
        keep = np.argpartition(np.abs(v), self._d - self.k)[self._d - self.k :]
        sent = np.zeros(self._d)
        sent[keep] = v[keep]
        self.memory[cid] = v - sent
        return sent

    def decode(self, aggregate: np.ndarray, included: tuple[int, ...]) -> np.ndarray:
        return aggregate

    def client_state(self, client: int) -> dict[str, np.ndarray]:
        own = {self.name: self.memory[client]} if client in self.memory else {}
        return {**self.inner.client_state(client), **own}

    def restore_client_state(self, client: int, state: dict[str, np.ndarray]) -> None:
        if self.name in state:
            self.memory[client] = np.asarray(state[self.name], dtype=np.float64)
        else:
            self.memory.pop(client, None)
        self.inner.restore_client_state(client, state)

    def guarantee(self, out: Output, totals: dict[str, float]) -> Guarantee:
        return local_guarantee(self._n, exact=False, parameters={"k": self.k, "d": self._d, "bytes_saved_fraction": 0.0},
                      notes="biased per round, error feedback carries the rest to later rounds (each client its own, by id); "
                      "sent densely so positions stay hidden by the protection layer and align under masking; a client that "
                      "drops after encoding keeps only its residual (what it sent and lost is not carried over)")


@dataclass(eq=False)
class StochasticQuantize(TransformLayer):
    """Each coordinate of x in [-clip, clip] -> level in {0, .., 2**q - 1}, rounded up with probability equal
    to the fractional part (unbiased). `inner` works in a ring of at least q + ceil(log2 n) bits."""

    q: int
    clip: float
    inner: RingProtocol
    name: str = "quantize"

    def prepare(self, n: int, d: int, rng: Randomness) -> None:
        self._n, self._d = n, d
        if not 1 <= self.q <= 24 or not self.clip > 0:
            raise ValueError(f"need 1 <= q <= 24 and clip > 0, found q={self.q}, clip={self.clip}")
        if self.inner.bits < self.q + math.ceil(math.log2(max(self._n, 2))):
            raise ValueError(f"a sum of {self._n} {self.q}-bit levels needs >= {self.q + math.ceil(math.log2(max(self._n, 2)))} bits, inner ring has {self.inner.bits}")
        self._step = 2 * self.clip / (2**self.q - 1)

    def encode(self, client: int, row: np.ndarray, rng: Randomness) -> np.ndarray:
        level = (np.clip(np.asarray(row, dtype=np.float64), -self.clip, self.clip) + self.clip) / self._step
        floor = np.floor(level)
        rounded = np.minimum(floor + (uniform(rng, len(level)) < level - floor), 2**self.q - 1)
        return rounded.astype(Ring(self.inner.bits).dtype)  # BFV has bits, no ring (review 12)

    def decode(self, aggregate: np.ndarray, included: tuple[int, ...]) -> np.ndarray:
        return aggregate.astype(np.float64) * self._step - len(included) * self.clip

    def guarantee(self, out: Output, totals: dict[str, float]) -> Guarantee:
        return local_guarantee(self._n, exact=False, parameters={"q": self.q, "clip": self.clip, "ring_bits": self.inner.bits,
                                       "bytes_saved_fraction_vs_float32": round(1 - Ring(self.inner.bits).element_bytes / 4, 4)},
                      notes=f"unbiased within [-clip, clip]; variance <= step^2/4 = {self._step**2 / 4:.3g} per coordinate per client",
                      numeric_error=len(out.included) * self._step)


KEEP = {"fraction": Field(float, None, lambda v: 0 < v <= 1, "in (0, 1]"), "k": Field(int, None, lambda v: v >= 1, ">= 1")}


def _kept(values: dict, ctx: StackContext) -> int:
    """k from `k`, or from `fraction` of the dimension at this layer (rounded, at least 1)."""
    if (values["k"] is None) == (values["fraction"] is None):
        raise StackError(f"give exactly one of k and fraction, found k={values['k']}, fraction={values['fraction']}", layer=ctx.layer, position=ctx.position)
    k = values["k"] if values["k"] is not None else max(1, round(values["fraction"] * ctx.dim))
    if k > ctx.dim:
        raise StackError(f"k must be <= the dimension {ctx.dim} at this layer, found {k}", layer=ctx.layer, position=ctx.position, field="k")
    return k


@register("randk", fields=KEEP, about="keep k (or fraction * d) coordinates, the same for every client, drawn afresh each round")
def _randk(values: dict, ctx: StackContext, inner) -> Protocol:
    k = _kept(values, ctx)
    return RandK(k, inner(ctx.replace(dim=k)))


@register("topk", fields=KEEP, about="top-k with error feedback (sent densely: positions stay hidden by the protection); the memory "
          "can push a sent vector's norm above an outer clip bound, so the layers inside it need a clip of their own")
def _topk(values: dict, ctx: StackContext, inner) -> Protocol:
    dropped = "topk (its error feedback adds the memory to the clipped update)" if ctx.clip is not None else ctx.clip_dropped_by
    return TopK(_kept(values, ctx), inner(ctx.replace(clip=None, rotated=False, clip_dropped_by=dropped)))  # update + memory: no bound from outside holds, and the largest coordinates are kept


@register("quantize", flow={"floats": "ring"}, fields={"q": Field(int, 8, lambda v: 1 <= v <= 24, "in [1, 24]")},
          about="unbiased stochastic rounding to 2**q levels over [-clip, clip], summed in the ring of the protection inside")
def _quantize(values: dict, ctx: StackContext, inner) -> Protocol:
    clip = ctx.require("clip", "a clip layer outside it (the levels span [-clip, clip])")
    if not ctx.clip_bounds_input:  # the levels would clamp every coordinate changed after the clip (review 11)
        raise StackError("needs a clip that bounds its inputs: a layer between the clip and it changes them; put a clip after that layer",
                         layer=ctx.layer, position=ctx.position, field="clip")
    need = values["q"] + math.ceil(math.log2(max(ctx.participants, 2)))
    if ctx.ring_bits() < need:
        raise StackError(f"a sum of {ctx.participants} {values['q']}-bit levels needs a ring of >= {need} bits, the protection inside has "
                         f"{ctx.ring_bits()}", layer=ctx.layer, position=ctx.position, field="q")
    return StochasticQuantize(values["q"], clip, inner(ctx.replace(norm_bound=None, clip_bounds_input=False)))
