"""Scaling, conditional randomized rounding and modular clipping into Z_{2^b} (Kairouz, Liu, Steinke 2021).

Each client scales its (rotated) update by `scale`, rounds every coordinate up with probability equal
to its fractional part, and retries until the rounded vector's L2 norm is at most the bound below:
the rounding is unbiased up to the rejection and the sensitivity grows only to

    l2 = min(c + sqrt(d), sqrt(c**2 + d/4 + sqrt(2 log(1/beta)) (c + sqrt(d)/2))),  c = clip * scale,
    l1 = min(l2**2, sqrt(d) l2)            (integer vectors: |x_i| <= x_i**2)

(integer units). The integers are read mod 2**b; the server reads the sum back as signed integers
in [-2**(b-1), 2**(b-1)) and divides by scale, which is exact while no coordinate of the noisy sum wraps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from protocols.core.protocol import Protocol, RingProtocol
from protocols.core.report import Guarantee, Output
from protocols.core.stack import Field, StackContext, StackError, register
from protocols.dp.samplers import max_share_variance, uniform
from protocols.layers.transform import TransformLayer, local_guarantee
from secagg.encoding import FixedPoint
from secagg.randomness import Randomness
from secagg.ring import Ring

MAX_ROUNDING_TRIES = 1000
# the largest clip * scale (integer units): float64 scaling then errs by at most c 2**-52 = 2**-8 in the norm, far below the
# rounding's slack over c (about 0.7 + d / (8 c) for beta > 0), so conditional rounding meets its bound (review 12: in a ring
# of 60+ bits the fitted c reached 2**57, where float64 errs by ~40 units and rounding failed every try)
MAX_SCALED_NORM = 2.0**44


def rounded_l2_bound(c: float, d: int, beta: float) -> float:
    """L2 norm bound after conditional randomized rounding of a vector of norm <= c (integer units)."""
    deterministic = c + math.sqrt(d)
    if beta == 0:
        return deterministic
    return min(deterministic, math.sqrt(c**2 + d / 4 + math.sqrt(2 * math.log(1 / beta)) * (c + math.sqrt(d) / 2)))


def rounded_l1_bound(l2: float, d: int) -> float:
    """L1 bound of an integer vector of L2 norm <= l2 in d dimensions."""
    return min(l2**2, math.sqrt(d) * l2)


def choose_scale(*, bits: int, clients: int, dim: int, clip: float, noise_multiplier: float, shares: int | None = None,
                 wrap_probability: float = 1e-6, beta: float = math.exp(-0.5), rotated: bool = True) -> float:
    """The largest scale, at most MAX_SCALED_NORM / clip, for which the noisy sum of `clients` rounded updates wraps mod
    2**bits with probability at most `wrap_probability` (heuristic of Kairouz et al. 2021), when each of the `clients`
    adds a noise share of the recipes' size: variance (noise_multiplier l2)**2 / shares, l2 = rounded_l2_bound(clip scale,
    dim, beta) (integer units), `shares` the survivors the noise is split among (default `clients`).

    Every participant adds a share, however many were planned, so the sum's noise variance is clients / shares
    (noise_multiplier l2)**2 (review 13: sizing for noise_multiplier clip and for `shares` alone wrapped the ring). With
    k = Phi^-1(1 - wrap_probability / (2 dim)) (a union bound over coordinates) the scale is the largest with
        rotated inputs:   k sqrt(clients**2 l2**2 / dim + noise variance) <= 2**(bits-1)  (every client is rotated by the
                          same public signs, so the sum is the rotation of the summed inputs, of norm up to clients l2, and
                          a coordinate of it about N(0, (clients l2)**2 / dim); rounding adds at most 1/4 a coordinate,
                          which l2 counts; reviews 16, 17: independent rotations were assumed, and aligned updates wrapped),
        `rotated` False:  clients l2 + k sqrt(noise variance) <= 2**(bits-1)  (a coordinate may carry its whole norm),
    found by fixed-point iteration (l2 is about clip scale plus a constant).

    Raises:
        ValueError: if the parameters cannot fit: rounding at that scale would more than double the L2
            sensitivity (too few bits for the dimension), or arguments are out of range.
    """
    shares = clients if shares is None else shares
    if bits < 2 or clients < 1 or dim < 1 or clip <= 0 or noise_multiplier < 0 or not 1 <= shares or not 0 < wrap_probability < 1:
        raise ValueError(f"bad arguments: bits={bits}, clients={clients}, dim={dim}, clip={clip}, noise_multiplier={noise_multiplier}, "
                         f"shares={shares}, wrap_probability={wrap_probability}")
    k, half = -NormalDist().inv_cdf(wrap_probability / (2 * dim)), 2.0 ** (bits - 1)  # the lower tail: exact below 1e-16 too

    def reach(scale: float) -> float:  # how far a coordinate of the noisy sum may go, k standard deviations included
        l2 = rounded_l2_bound(clip * scale, dim, beta)
        noise = clients / shares * (noise_multiplier * l2) ** 2
        return k * math.sqrt(clients**2 * l2**2 / dim + noise) if rotated else clients * l2 + k * math.sqrt(noise)

    spread = math.sqrt(clients**2 / dim + clients / shares * noise_multiplier**2) if rotated else clients + k * noise_multiplier * math.sqrt(clients / shares)
    scale = min(half / ((k if rotated else 1.0) * clip * spread), MAX_SCALED_NORM / clip)  # l2 >= clip scale: an upper bound
    for _ in range(100):
        if reach(scale) <= half or rounded_l2_bound(clip * scale, dim, beta) > 2 * clip * scale:
            break
        scale *= 0.999 * half / reach(scale)
    if rounded_l2_bound(clip * scale, dim, beta) > 2 * clip * scale or reach(scale) > half:
        raise ValueError(
            f"{bits} bits cannot hold {clients} clients at d={dim}: the scale that avoids wrapping ({scale:.3g}) makes "
            f"rounding more than double the sensitivity; use more bits, fewer dimensions or less noise"
        )
    return scale


def within_share_variance(scale: float, *, clip: float, dim: int, beta: float, noise_multiplier: float, shares: int, limit: float) -> float:
    """`scale`, lowered where needed so that a noise share of the recipes' size, (noise_multiplier l2)**2 / shares with
    l2 = rounded_l2_bound(clip scale, dim, beta), has variance at most `limit` (the samplers' exact range).

    Raises:
        ValueError: if the lowered scale would make rounding more than double the sensitivity."""
    l2 = rounded_l2_bound(clip * scale, dim, beta)
    while (noise_multiplier * l2) ** 2 / shares > limit:  # l2 grows about linearly in the scale: a step or two
        scale *= 0.999 * math.sqrt(limit * shares) / (noise_multiplier * l2)
        l2 = rounded_l2_bound(clip * scale, dim, beta)
        if l2 > 2 * clip * scale:
            raise ValueError(f"a noise share's variance must stay within {limit:.3g} (the samplers' exact range): at the scale that "
                             f"allows ({scale:.3g}) rounding would more than double the sensitivity; use fewer clients a share")
    return scale


@dataclass(eq=False)
class DiscreteEncode(TransformLayer):
    """Floats (update units) -> Z_{2^bits} at `scale`, with conditional rounding for clip norm `clip`.
    `inner` is a ring protocol or a layer over one (it has `bits`)."""

    scale: float
    clip: float
    inner: RingProtocol
    beta: float = math.exp(-0.5)
    name: str = "discretize"

    def __post_init__(self) -> None:
        if not self.scale > 0 or not self.clip > 0 or not 0 <= self.beta < 1:
            raise ValueError(f"need scale > 0, clip > 0, 0 <= beta < 1; found {self.scale}, {self.clip}, {self.beta}")
        if self.clip * self.scale > MAX_SCALED_NORM:
            raise ValueError(f"scale {self.scale:.6g} at clip {self.clip:.6g} exceeds clip scale <= 2**44 (MAX_SCALED_NORM), "
                             "beyond which float64 rounding cannot meet the rounded-norm bound")
        self._codec = FixedPoint(self.scale, Ring(self.inner.bits))

    def prepare(self, n: int, d: int, rng: Randomness) -> None:
        self._d, self._n = d, n
        self.l2_sensitivity = rounded_l2_bound(self.clip * self.scale, self._d, self.beta)
        self.l1_sensitivity = rounded_l1_bound(self.l2_sensitivity, self._d)

    def encode(self, client: int, row: np.ndarray, rng: Randomness) -> np.ndarray:
        scaled = np.asarray(row, dtype=np.float64) * self.scale
        floor = np.floor(scaled)
        for _ in range(MAX_ROUNDING_TRIES):
            rounded = floor + (uniform(rng, len(scaled)) < scaled - floor)
            if np.linalg.norm(rounded) <= self.l2_sensitivity:
                return self._codec.ring.reduce(rounded.astype(np.int64).astype(self._codec.ring.dtype))
        raise ValueError(f"client {client}: conditional rounding failed {MAX_ROUNDING_TRIES} times; is the update clipped to {self.clip}?")

    def unprotected(self, client: int, row: np.ndarray, rng: Randomness) -> np.ndarray:
        """One randomized rounding without the norm condition, reduced mod 2**bits (exact while |x| scale < 2**53)."""
        scaled = np.asarray(row, dtype=np.float64) * self.scale
        floor = np.floor(scaled)
        rounded = np.mod(floor + (uniform(rng, len(scaled)) < scaled - floor), float(self._codec.ring.modulus))
        return self._codec.ring.reduce(rounded.astype(np.uint64).astype(self._codec.ring.dtype))

    def decode(self, aggregate: np.ndarray, included: tuple[int, ...]) -> np.ndarray:
        return self._codec.decode(aggregate)

    def guarantee(self, out: Output, totals: dict[str, float]) -> Guarantee:
        return local_guarantee(
            self._n,
            exact=False,
            numeric_error=len(out.included) / self.scale,
            parameters={"scale": round(self.scale, 4), "bits": self.inner.bits, "beta": round(self.beta, 4),
                        "l2_sensitivity": round(self.l2_sensitivity, 3), "l1_sensitivity": round(self.l1_sensitivity, 3)},
            notes="rounding error < 1/scale per coordinate per client (unbiased); the sum is exact mod 2**bits "
            "and decodes correctly unless a coordinate of the noisy sum leaves [-2**(bits-1), 2**(bits-1))",
        )


FITS = ("norm", "scaled", "noise")


def fitted_scale(fit: str, *, bits: int, clients: int, dim: int, clip: float) -> float:
    """The scale (integer units per update unit) at which the sum of `clients` rounded inputs cannot wrap
    mod 2**bits: "norm": clients (clip scale + sqrt(dim)) <= 2**(bits-2) (each rounded input has L2 norm,
    hence every coordinate, at most clip scale + sqrt(dim)); "scaled": clients scale (clip + sqrt(dim)) <= 2**(bits-2)
    (more conservative); at most MAX_SCALED_NORM / clip either way.

    Raises:
        ValueError: if "norm" leaves no scale >= 1.
    """
    room = 2.0 ** (bits - 2)
    if fit == "scaled":
        return min(room / (clients * (clip + math.sqrt(dim))), MAX_SCALED_NORM / clip)
    scale = (room / clients - math.sqrt(dim)) / clip
    if scale < 1:
        raise ValueError(f"{clients} participants of dimension {dim} leave no room in a {bits}-bit ring "
                         f"(m (clip scale + sqrt(dim)) must stay below 2**{bits - 2}); use fewer participants or a smaller model")
    return min(scale, MAX_SCALED_NORM / clip)


def _check_given_scale(scale: float, *, clip: float, beta: float, noise: float | None, wrap_probability: float, ctx: StackContext) -> None:
    """Refuses a given scale at which the sum of the participants' rounded inputs can leave the signed range of the ring
    inside: without noise, m rounded_l2_bound(clip scale, d, beta) >= 2**(bits-1) (every coordinate of a rounded input is
    at most its norm); with noise inside, a scale above `choose_scale`'s (wrap probability above `wrap_probability`).

    Raises:
        StackError: naming the field scale, its value and the limit.
    """
    bits = ctx.ring_bits()
    if noise is None:
        peak = ctx.participants * rounded_l2_bound(clip * scale, ctx.dim, beta)
        if peak >= 2.0 ** (bits - 1):
            raise StackError(f"{scale:.6g} lets the sum of {ctx.participants} rounded inputs reach {peak:.6g} >= 2**{bits - 1}, the signed "
                             f"range of the {bits}-bit ring inside: the sum would wrap; lower it or leave it unset (fitted)",
                             layer=ctx.layer, position=ctx.position, field="scale")
        return
    limit = choose_scale(bits=bits, clients=ctx.participants, dim=ctx.dim, clip=clip, noise_multiplier=noise, shares=ctx.survivors,
                         wrap_probability=wrap_probability, beta=beta, rotated=ctx.rotated)
    if scale > limit * (1 + 1e-9):
        raise StackError(f"{scale:.6g} is above {limit:.6g}, the largest scale at which the noisy sum of the {bits}-bit ring inside wraps "
                         f"with probability at most wrap_probability = {wrap_probability:g}; lower it or leave it unset (fitted)",
                         layer=ctx.layer, position=ctx.position, field="scale")


@register("discretize", flow={"floats": "ring"}, fields={"scale": Field(float, None, lambda v: v > 0, "> 0"), "beta": Field(float, None, lambda v: 0 <= v < 1, "in [0, 1)"),
                                "fit": Field(str, None, choices=FITS), "wrap_probability": Field(float, 1e-6, lambda v: 0 < v < 1, "in (0, 1)")},
          about="scale and round into the ring of the protection inside; scale derived by `fit` (norm, scaled, or noise: "
                "choose_scale for the noise inside) unless given; beta defaults to exp(-1/2) with noise inside, else 0")
def _discretize(values: dict, ctx: StackContext, inner) -> Protocol:
    clip = ctx.require("clip", "a clip layer outside it (rounding is conditioned on the L2 bound)")
    if not ctx.clip_bounds_input:  # conditional rounding would fail on every noisy input (review 10)
        raise StackError("needs a clip that bounds its inputs: a layer between the clip and it (noise, stochastic quantization) "
                         "changes them after the clip; put a clip after that layer or discretize before it",
                         layer=ctx.layer, position=ctx.position, field="clip")
    noise, layers = ctx.noise_inside(), ctx.noise_layers_inside()
    fit = values["fit"] or ("noise" if noise is not None else "norm")
    beta = values["beta"] if values["beta"] is not None else (math.exp(-0.5) if noise is not None else 0.0)
    scale = values["scale"]
    if scale is not None and clip * scale > MAX_SCALED_NORM:
        raise StackError(f"{scale:.6g} at clip {clip:.6g} exceeds clip scale <= 2**44 (MAX_SCALED_NORM), beyond which float64 "
                         "rounding cannot meet the rounded-norm bound", layer=ctx.layer, position=ctx.position, field="scale")
    wrap = ctx.wrap_probability_inside(values["wrap_probability"])  # the noise layers' own fields inside count too (review 23)
    if scale is not None:  # checked against the ring as a fitted scale is (review 21: scale=1e9 wrapped a 32-bit sum)
        _check_given_scale(scale, clip=clip, beta=beta, noise=noise, wrap_probability=wrap, ctx=ctx)
    if scale is None:
        bits = ctx.ring_bits()
        if fit == "noise" and noise is None:
            raise StackError("fit 'noise' needs a noise layer (skellam, ddg) inside it", layer=ctx.layer, position=ctx.position, field="fit")
        if fit != "noise":
            scale = fitted_scale(fit, bits=bits, clients=ctx.participants, dim=ctx.dim, clip=clip)
        if noise is not None:  # the ring must hold the noise too, whatever the fit (review 13: fit=norm wrapped most coordinates)
            fits_noise = choose_scale(bits=bits, clients=ctx.participants, dim=ctx.dim, clip=clip, noise_multiplier=noise, shares=ctx.survivors,
                                      wrap_probability=wrap, beta=beta, rotated=ctx.rotated)
            scale = fits_noise if scale is None else min(scale, fits_noise)
        for z, mechanism in layers:  # each noise layer inside sizes its shares to this scale: keep them within its sampler's range
            if z:  # (review 12; review 22: each layer's own z against its own sampler, not the sum against the first's)
                scale = within_share_variance(scale, clip=clip, dim=ctx.dim, beta=beta, noise_multiplier=z, shares=ctx.survivors,
                                              limit=max_share_variance(mechanism))
    protection = inner(ctx.replace(scale=scale, beta=beta, norm_bound=rounded_l2_bound(clip * scale, ctx.dim, beta)))
    return DiscreteEncode(scale, clip, protection, beta=beta)
