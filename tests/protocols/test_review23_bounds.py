"""Review 23: d371bd7 attacked (adaptive-clip keeps a fixed clip outside it as the bound inside; gaussian(0) is no layer;
the skellam/ddg recipe sizes its ring for the noise layers inside it; discretize meets each noise layer's own sampler range).
Breaks are strict xfails whose bodies pass once fixed; held attacks are plain tests (exact cases, not the code against itself)."""

import math

import numpy as np
import pytest
from scipy.stats import norm as normal

import protocols  # noqa: F401  registers every layer
from protocols import secure_sum
from protocols.core.stack import StackContext, StackError, build, parse
from protocols.layers.discretize import DiscreteEncode, choose_scale
from protocols.layers.noise import DistributedNoise
from tests.protocols.stack_walk import chain as _chain

D, N = 8, 6


def _build(text: str, **context):
    return build(parse(text), StackContext(dim=context.pop("dim", D), participants=context.pop("participants", N), **context))


def _inputs(norm: float, seed: int = 1) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(N, D))
    return (x / np.linalg.norm(x, axis=1, keepdims=True) * norm).astype(np.float32)


# 1. adaptive-clip under a fixed clip: what the layers inside read ---------------------------------------------------------

def test_an_adaptive_norm_above_the_outer_clip_keeps_the_outer_bound_inside():
    """Held: C_t = 5 above the outer clip 1 (and moving): discretize inside conditions its rounding on the outer clip; every
    honest client stays in and the sum is the outer-clipped inputs' within the rounding error N / scale a coordinate."""
    stack = _build("clip(bound=1) > adaptive-clip(norm=5) > discretize > secagg+")
    scale = next(p for p in _chain(stack) if isinstance(p, DiscreteEncode)).scale
    for r in range(3):
        x = _inputs(5.0, seed=r)
        out = secure_sum(x, protocol=stack, seed=r)
        assert len(out.included) == N and not out.rejected
        clipped = x / np.linalg.norm(x, axis=1, keepdims=True)  # C_t >= 1 these rounds (it starts at 5, every bit is 1)
        assert np.max(np.abs(out.result - clipped.sum(axis=0))) <= N / scale + 1e-5


def test_noise_inside_adaptive_clip_is_sized_to_the_outer_clip():
    """Held: the noise inside adaptive-clip takes the outer clip as its sensitivity (clipping to C_t only shrinks, so the
    update's sensitivity is min(C, C_t) <= C): the same l2 sensitivity and share variance as without adaptive-clip."""
    plain = next(p for p in _chain(_build("clip(bound=1) > skellam(noise_multiplier=1) > secagg+")) if isinstance(p, DistributedNoise))
    for norm in (0.1, 1.0, 10.0):
        inner = next(p for p in _chain(_build(f"clip(bound=1) > adaptive-clip(norm={norm}) > skellam(noise_multiplier=1) > secagg+"))
                     if isinstance(p, DistributedNoise))
        assert inner.l2_sensitivity == plain.l2_sensitivity and inner.local_variance == plain.local_variance


def test_a_zero_gaussian_before_adaptive_clip_leaves_the_clip_a_bound():
    """Held: gaussian(0) is no layer, so a noise recipe under it and adaptive-clip builds as under the clip alone."""
    stack = _build("clip(bound=1) > gaussian(noise_multiplier=0) > adaptive-clip(norm=1) > skellam(noise_multiplier=1) > secagg+")
    assert len(secure_sum(_inputs(5.0), protocol=stack, seed=0).included) == N


def test_two_adaptive_clips_count_apart_and_clip_to_the_smaller_norm():
    """Held: nested adaptive clips (both under the fixed clip, so both build) keep their counts apart in one split round (the
    measurements share the names 'adaptive-clip' and its count's): inputs of norm 2 are outside C = 1 (fraction 0, the norm
    grows by e^(0.2 * 0.5)) and, clipped to 1, inside C = 3 (fraction 1, it shrinks by e^(-0.1)); the sum is of norm-1 rows."""
    stack = _build("clip(bound=10) > adaptive-clip(norm=1) > adaptive-clip(norm=3) > discretize > secagg+")
    x = _inputs(2.0)
    out = secure_sum(x, protocol=stack, seed=0)
    moved = {r.guarantee.parameters["norm_used"]: r.guarantee.parameters for r in out.reports if r.layer == "adaptive-clip"}
    assert moved[1.0]["noisy_fraction_within"] == 0.0 and moved[1.0]["next_norm"] == pytest.approx(math.exp(0.1), abs=1e-6)
    assert moved[3.0]["noisy_fraction_within"] == 1.0 and moved[3.0]["next_norm"] == pytest.approx(3 * math.exp(-0.1), abs=1e-6)
    assert np.max(np.abs(out.result - (x / 2).sum(axis=0))) <= 1e-4


# 2. float Gaussian shares clipped per client before the sum --------------------------------------------------------------

@pytest.mark.parametrize("inner_clip", ["adaptive-clip(norm=0.01)", "clip(bound=0.01)"])
def test_a_clip_after_gaussian_shares_keeps_the_aggregate_epsilon(inner_clip):
    """Was a break (review 23): gaussian reported the aggregate mechanism though a clip inside it clipped each noisy row before the sum; L2Clip now marks chosen_from_inputs, so the noise counts each client's own share."""
    m, c_t = 25, 0.01
    try:
        stack = _build(f"clip(bound=1) > gaussian(noise_multiplier=1) > {inner_clip} > ckks", dim=1, participants=m)
    except StackError:
        return  # refusing the stack is a fix
    out = secure_sum(np.ones((m, 1), np.float32), protocol=stack, seed=0)  # every x_i = 1 (the others fixed by the adversary)
    g = next(r.guarantee for r in out.reports if r.layer == "gaussian-noise")
    s = 1.0 / math.sqrt(m)  # each share's stddev z C / sqrt(m)
    # neighbours x_j = 1 vs x_j = 0 (zero-out); S = {sum <= (m - 1.5) C_t}. x_j = 0: term_j = -C_t when n_j <= -C_t and every
    # other term is <= C_t, so P0(S) >= Phi(-C_t / s). x_j = 1: S needs some term below C_t, i.e. some 1 + n_i < C_t:
    # P1(S) <= m Phi(-(1 - C_t) / s). (eps, delta)-DP needs P0(S) <= e^eps P1(S) + delta.
    p0, p1 = normal.cdf(-c_t / s), m * normal.cdf(-(1 - c_t) / s)
    assert g.epsilon >= math.log((p0 - g.delta) / p1)


# 3. several distributed-noise layers and the ring -------------------------------------------------------------------------

def test_two_noise_mechanisms_from_floats_build_in_either_order():
    """Was a break (review 23): the recipe lowered its scale for its own sampler only; it now lowers it for every noise layer inside too."""
    tail = "secagg(bits=62)"
    skellam_first = _build(f"clip(bound=1) > skellam(noise_multiplier=1) > ddg(noise_multiplier=1) > {tail}")
    ddg_first = _build(f"clip(bound=1) > ddg(noise_multiplier=1) > skellam(noise_multiplier=1) > {tail}")
    for stack in (skellam_first, ddg_first):
        assert len([p for p in _chain(stack) if isinstance(p, DistributedNoise)]) == 2


def test_two_noise_mechanisms_from_floats_stay_within_each_sampler():
    """Held: the order that builds keeps each layer's shares within its own sampler's range (the build checks it; so does this)."""
    from protocols.layers.discretize import max_share_variance
    stack = _build("clip(bound=1) > skellam(noise_multiplier=1) > ddg(noise_multiplier=1) > secagg(bits=62)")
    noises = [p for p in _chain(stack) if isinstance(p, DistributedNoise)]
    assert all(p.local_variance <= max_share_variance(p.mechanism) for p in noises)


@pytest.mark.parametrize("outer", ["skellam(noise_multiplier=1)", "discretize"])
def test_an_inner_noise_layers_wrap_probability_is_met(outer):
    """Was a break (review 23): an inner noise layer's wrap_probability was ignored; the layer that sizes the ring now meets the smallest inside it."""
    inner = "ddg(noise_multiplier=1, wrap_probability=1e-12)"
    z = math.hypot(1, 1) if outer.startswith("skellam") else 1.0
    try:
        stack = _build(f"clip(bound=1) > {outer} > {inner} > secagg+(bits=20)")
    except StackError as exc:
        assert exc.field == "wrap_probability", exc
        return
    encode = next(p for p in _chain(stack) if isinstance(p, DiscreteEncode))
    limit = choose_scale(bits=20, clients=N, dim=D, clip=1.0, noise_multiplier=z, shares=N, wrap_probability=1e-12, beta=encode.beta,
                         rotated=outer.startswith("skellam"))
    assert encode.scale <= limit * (1 + 1e-9)
