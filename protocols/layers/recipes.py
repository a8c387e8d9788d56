"""Recipes: vetted stacks with parameters derived consistently from a few choices."""

from __future__ import annotations

import math
from dataclasses import dataclass

from protocols.accounting import DistributedDiscreteGaussian, Skellam
from protocols.core.protocol import Protocol, RingProtocol
from protocols.core.stack import Field, StackContext, StackError, Traits, register, uncounted
from protocols.dp.samplers import max_share_variance
from protocols.layers.central_noise import CentralGaussian
from protocols.layers.clip import L2Clip
from protocols.layers.discretize import DiscreteEncode, choose_scale, rounded_l1_bound, rounded_l2_bound, within_share_variance
from protocols.layers.local_noise import LocalGaussian
from protocols.layers.noise import DistributedNoise, noise_mechanism
from protocols.layers.rotation import RandomizedHadamard
from protocols.robust.layer import PlainRobust


@dataclass(frozen=True, slots=True)
class DistributedDPParameters:
    """What `distributed_dp` derives: scale (integer units per update unit), the rounded sensitivities
    (integer units) and each client's noise variance (integer units squared), for a padded dimension."""

    padded_dim: int
    scale: float
    l2_sensitivity: float
    l1_sensitivity: float
    local_variance: float

    def mechanism(self, kind: str, clients: int) -> Skellam | DistributedDiscreteGaussian:
        """The mechanism when `clients` noise shares reach the output."""
        return noise_mechanism(kind, self.local_variance, clients, self.padded_dim, self.l2_sensitivity, self.l1_sensitivity)


def distributed_dp_parameters(
    *, bits: int, clients: int, dim: int, clip: float, noise_multiplier: float, expected_clients: int | None = None,
    wrap_probability: float = 1e-6, beta: float = math.exp(-0.5), mechanism: str = "skellam", inner_noise: tuple[tuple[float, str], ...] = (),
) -> DistributedDPParameters:
    """Scale from `choose_scale` for the noise the ring holds: noise_multiplier and those of `inner_noise` (the
    (noise_multiplier, mechanism) of the noise layers inside that add their shares at this scale) together,
    sqrt(sum z**2) (review 22); lowered where needed so that each layer's share variance stays within its own sampler's
    exact range (`max_share_variance`, review 12: a wide ring or few clients sized shares the float64 samplers cannot
    draw; review 23: the inner layers' too); total noise stddev of this layer = noise_multiplier * l2 (integer units),
    split into `expected_clients` equal shares (default: all).

    Raises:
        ValueError: if the ring cannot hold the noisy sum at a useful scale (see `choose_scale`), or the lowered scale
            would make rounding more than double the sensitivity.
    """
    padded, shares = 1 << max(0, (dim - 1).bit_length()), expected_clients or clients
    ring_noise = math.hypot(noise_multiplier, *(z for z, _ in inner_noise))  # independent noises add their variances
    scale = choose_scale(bits=bits, clients=clients, dim=padded, clip=clip, noise_multiplier=ring_noise, shares=shares,
                         wrap_probability=wrap_probability, beta=beta)
    for z, kind in ((noise_multiplier, mechanism), *inner_noise):
        if z > 0:
            scale = within_share_variance(scale, clip=clip, dim=padded, beta=beta, noise_multiplier=z, shares=shares,
                                          limit=max_share_variance(kind))
    l2 = rounded_l2_bound(clip * scale, padded, beta)
    return DistributedDPParameters(padded, scale, l2, rounded_l1_bound(l2, padded), (noise_multiplier * l2) ** 2 / shares)


def distributed_dp(
    protection: RingProtocol,
    *,
    clients: int,
    dim: int,
    clip: float,
    noise_multiplier: float,
    mechanism: str = "skellam",
    expected_clients: int | None = None,
    delta: float = 1e-5,
    wrap_probability: float = 1e-6,
    beta: float = math.exp(-0.5),
    assume_colluding: int = 0,
) -> Protocol:
    """clip -> randomized Hadamard -> scale + conditional rounding into Z_{2^b} -> noise shares -> `protection`.

    Pass `expected_clients` as the number you expect to survive: fewer shares than planned mean less
    noise, and the noise layer then reports the larger epsilon of the noise that did arrive, without the
    `assume_colluding` shares of clients that may collude with the server or be Byzantine.
    """
    p = distributed_dp_parameters(bits=protection.bits, clients=clients, dim=dim, clip=clip, noise_multiplier=noise_multiplier,
                                  expected_clients=expected_clients, wrap_probability=wrap_probability, beta=beta, mechanism=mechanism)
    noise = DistributedNoise(mechanism, p.local_variance, p.l2_sensitivity, p.l1_sensitivity, protection, delta=delta,
                             assume_colluding=assume_colluding)
    return L2Clip(clip, RandomizedHadamard(DiscreteEncode(p.scale, clip, noise, beta=beta)))


def central_dp(rule: PlainRobust, *, clip: float, noise_multiplier: float, delta: float = 1e-5) -> Protocol:
    """Baseline, central DP in the clear: clip -> `rule` at a trusted server -> Gaussian noise of
    noise_multiplier times the rule's sensitivity (`protocols.layers.central_noise.rule_sensitivity`)."""
    return L2Clip(clip, CentralGaussian(noise_multiplier, clip, rule, delta=delta))


def local_dp(inner: Protocol, *, clip: float, noise_multiplier: float, delta: float = 1e-5) -> Protocol:
    """Baseline, local DP: clip -> each client adds N(0, (noise_multiplier * clip)**2) per coordinate -> `inner`
    (any rule or protection: the noise protects each input on its own)."""
    return L2Clip(clip, LocalGaussian(noise_multiplier, clip, 1, inner, delta=delta))


NOISE_FIELDS = {"noise_multiplier": Field(float, check=lambda v: v > 0, expect="> 0"),
                "wrap_probability": Field(float, 1e-6, lambda v: 0 < v < 1, "in (0, 1)"),
                "beta": Field(float, None, lambda v: 0 <= v < 1, "in [0, 1) (default exp(-1/2); under a layer outside that chose the "
                              "scale, that layer's)")}
NOISE_FLOW = {"floats": "ring", "ring": "ring"}  # the whole recipe from floats, or noise alone under a discretize layer


def _distributed_noise(mechanism: str, values: dict, ctx: StackContext, inner) -> Protocol:
    """Noise shares of total stddev noise_multiplier * l2 (integer units), split among the expected survivors,
    uncounted: the possibly Byzantine clients and those the protection declares may collude. Under a
    discretize layer it uses that layer's scale; otherwise it is the whole recipe (`distributed_dp`):
    randomized Hadamard -> discretize (scale from `choose_scale`) -> noise."""
    clip = ctx.require("clip", "a clip layer outside it (the noise is sized to the L2 bound)")
    if ctx.scale is None and not ctx.clip_bounds_input:  # its own conditional rounding would fail on every changed input (review 11)
        raise StackError("needs a clip that bounds its inputs: a layer between the clip and it (noise, stochastic quantization) changes "
                         "them; put a clip after that layer", layer=ctx.layer, position=ctx.position, field="clip")
    if ctx.scale is not None and values["beta"] is not None and values["beta"] != ctx.beta:  # review 24: it was ignored silently
        raise StackError(f"beta {values['beta']:g} cannot apply: the layer outside that chose the scale rounds with beta {ctx.beta:g}; "
                         "set beta there", layer=ctx.layer, position=ctx.position, field="beta")
    beta = math.exp(-0.5) if values["beta"] is None else values["beta"]
    if ctx.scale is not None:  # a discretize layer outside chose the scale
        l2 = rounded_l2_bound(clip * ctx.scale, ctx.dim, ctx.beta)
        p = DistributedDPParameters(ctx.dim, ctx.scale, l2, rounded_l1_bound(l2, ctx.dim), (values["noise_multiplier"] * l2) ** 2 / ctx.survivors)
        if p.local_variance > max_share_variance(mechanism):
            raise StackError(f"each noise share's variance would be {p.local_variance:.3g} at the discretize layer's scale {ctx.scale:.3g}, above "
                             f"{max_share_variance(mechanism):.3g} (its sampler's exact range): give discretize a smaller scale or fewer ring bits",
                             layer=ctx.layer, position=ctx.position, field="noise_multiplier")
        protection = inner(ctx.replace(norm_bound=None, clip_bounds_input=False))
    else:
        padded = RandomizedHadamard.padded_dim(ctx.dim)
        p = distributed_dp_parameters(bits=ctx.replace(dim=padded).ring_bits(), clients=ctx.participants, dim=ctx.dim, clip=clip,
                                      noise_multiplier=values["noise_multiplier"], expected_clients=ctx.expected,
                                      wrap_probability=ctx.wrap_probability_inside(values["wrap_probability"]), beta=beta,
                                      mechanism=mechanism, inner_noise=tuple(ctx.noise_layers_inside()))
        protection = inner(ctx.replace(dim=padded, scale=p.scale, beta=beta, norm_bound=None, clip_bounds_input=False))
    noise = DistributedNoise(mechanism, p.local_variance, p.l2_sensitivity, p.l1_sensitivity, protection, delta=ctx.delta,
                             assume_colluding=uncounted(ctx, protection))
    return noise if ctx.scale is not None else RandomizedHadamard(DiscreteEncode(p.scale, ctx.clip, noise, beta=beta))


for _mechanism in ("skellam", "ddg"):
    register(_mechanism, fields=NOISE_FIELDS, ring_noise=True, flow=NOISE_FLOW, about=f"distributed DP: {_mechanism} noise shares in the ring (with rotation and discretization "
             "unless a discretize layer is outside)")(lambda values, ctx, inner, _m=_mechanism: _distributed_noise(_m, values, ctx, inner))


@register("ddp", fields={"mechanism": Field(str, "skellam", choices=("skellam", "ddg")), **NOISE_FIELDS}, ring_noise=True, flow=NOISE_FLOW,
          about="skellam or ddg, by `mechanism`")
def _ddp(values: dict, ctx: StackContext, inner) -> Protocol:
    return _distributed_noise(values["mechanism"], {k: v for k, v in values.items() if k != "mechanism"}, ctx, inner)


@register("central-dp", fields={"noise_multiplier": Field(float, check=lambda v: v > 0, expect="> 0")}, traits=Traits(central_noise=True),
          about="central DP: the trusted server adds Gaussian noise to the output of the robust rule inside it")
def _central(values: dict, ctx: StackContext, inner) -> Protocol:
    clip = ctx.require("clip", "a clip layer outside it (the sensitivity is stated for the clip bound)")
    return CentralGaussian(values["noise_multiplier"], clip, inner(ctx), delta=ctx.delta)


@register("local-dp", fields={"noise_multiplier": Field(float, check=lambda v: v > 0, expect="> 0")}, traits=Traits(local_noise=True),
          about="local DP: each client adds the whole Gaussian noise N(0, (z clip)^2) to its update")
def _local(values: dict, ctx: StackContext, inner) -> Protocol:
    clip = ctx.require("clip", "a clip layer outside it (the noise is sized to the clip bound)")
    inside = ctx.replace(norm_bound=None, clip_bounds_input=False, noise_std=math.hypot(ctx.noise_std, values["noise_multiplier"] * clip))
    return LocalGaussian(values["noise_multiplier"], clip, 1, inner(inside), delta=ctx.delta)
