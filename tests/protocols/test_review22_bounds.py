"""Review 22: the fixes of review 21 (4c030f1, 567ec66, 329f320) attacked. `StackContext.noise_std` / `clip_dropped_by`
(which layers set and reset them), the CKKS build headroom under float noise (`honest_coordinate_bound`: "a stack that
builds is not refused by its honest clients, except with probability HONEST_TAIL a round"), ckks-robust's stated honest
rejection probability, and the ring sizing for several distributed-noise layers. Breaks are strict xfails whose bodies
pass once fixed; held attacks are plain tests (exact cases, not the code against itself)."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import protocols  # noqa: F401  registers every layer
from protocols import secure_sum
from protocols.core.stack import StackContext, StackError, build, innermost, parse
from protocols.he.aggregation import HONEST_TAIL
from protocols.layers.discretize import DiscreteEncode, choose_scale
from protocols.layers.gaussian_shares import GaussianShares
from secagg.he import ckks_encodable, ckks_headroom, fresh_error_bound
from secagg.he_params import preset
from tests.protocols.stack_walk import chain as _chain

D, N = 8, 6


def _build(text: str, **context):
    return build(parse(text), StackContext(dim=D, participants=N, **context))


def _spikes(value: float, d: int = D) -> np.ndarray:
    """Every client one coordinate of `value`: clipped to the clip exactly on that coordinate (the worst honest input)."""
    return np.tile(np.eye(d, dtype=np.float32)[0] * value, (N, 1))


def _inputs(norm: float, seed: int = 1) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(N, D))
    return (x / np.linalg.norm(x, axis=1, keepdims=True) * norm).astype(np.float32)


# 1. noise_std / clip_dropped_by: a layer that leaves them wrong -----------------------------------------------------------

def test_a_zero_gaussian_skips_the_ckks_headroom_check():
    """Was a break (review 22): gaussian(noise_multiplier=0) built no layer but set clip_bounds_input=False, so the headroom check was skipped; now it passes the context on unchanged."""
    with pytest.raises(StackError) as plain:
        _build("clip(bound=1e5) > ckks")  # the control: refused at build, naming clip
    assert plain.value.field == "clip"
    try:
        stack = _build("clip(bound=1e5) > gaussian(noise_multiplier=0) > ckks")
    except StackError as exc:
        assert exc.field == "clip", exc
        return
    assert len(secure_sum(_spikes(1e6), protocol=stack, seed=0).included) == N  # raises Refused by client 0 at encrypt


def test_a_zero_gaussian_keeps_the_clip_bound_for_ckks_robust():
    """Was a break (review 22): the same flag made ckks-robust demand a norm_bound under gaussian(0); fixed with it."""
    stack = _build("clip(bound=1) > gaussian(noise_multiplier=0) > ckks-robust(rule=krum, f=1)")
    assert innermost(stack).norm_bound == 1.0 and not secure_sum(_inputs(5.0), protocol=stack, seed=0).rejected


def test_a_fixed_clip_outside_adaptive_clip_still_bounds_the_ckks_inputs():
    """Was a break (review 22): adaptive-clip dropped a fixed clip outside it (a regression of 4c030f1); it now keeps the context when a clip is outside."""
    stack = _build("clip(bound=1) > adaptive-clip(norm=1) > ckks")
    for r in range(3):  # the adaptive norm moves above 1 (inputs of norm 5 are all over it): the outer clip still bounds them
        assert len(secure_sum(_inputs(5.0), protocol=stack, seed=r).included) == N


def test_layers_between_the_clip_and_ckks_robust_carry_the_noise_they_add():
    """Held: the stddev ckks-robust is told is that of the noise the layers between really add (the built GaussianShares'
    share_stddev, survivors < participants included, two noises adding variances), and a clip after the noise resets it."""
    def told(text, **context):
        stack = _build(text, **context)
        return innermost(stack).honest_noise_std, [p.share_stddev for p in _chain(stack) if isinstance(p, GaussianShares)]

    for text, context in [("clip(bound=2) > gaussian(noise_multiplier=1.5) > ckks-robust(rule=krum, f=1, norm_bound=9)", {"expected": 3}),
                          ("clip(bound=2) > rotation > gaussian(noise_multiplier=1) > randk(k=3) > ckks-robust(rule=krum, f=1, norm_bound=9)", {}),
                          ("clip(bound=2) > local-dp(noise_multiplier=0.5) > gaussian(noise_multiplier=1) > ckks-robust(rule=krum, f=1, norm_bound=9)", {})]:
        std, shares = told(text, **context)
        assert std == pytest.approx(math.sqrt(sum(s**2 for s in shares)), rel=1e-12), text
    assert told("clip(bound=2) > gaussian(noise_multiplier=1) > clip(bound=3) > ckks-robust(rule=krum, f=1, norm_bound=3)")[0] == 0.0


# 2. the CKKS build headroom under float noise ----------------------------------------------------------------------------

@settings(max_examples=25, deadline=None)
@given(m=st.integers(1, 10_000), d=st.integers(1, 10**7))
def test_the_coordinate_tail_is_a_union_bound_that_holds_exactly(m, d):
    """Held: with u = sqrt(2 ln(2 m d / HONEST_TAIL)) (honest_coordinate_bound's), the exact probability that any of m d
    independent N(0, 1) coordinates exceeds u in magnitude, 1 - (1 - 2 Q(u))**(m d), is at most HONEST_TAIL."""
    u = math.sqrt(2 * math.log(2 * m * d / HONEST_TAIL))
    exact = -math.expm1(m * d * math.log1p(-2 * stats.norm.sf(u)))
    assert exact <= HONEST_TAIL


NOISES = {"gaussian": lambda z, survivors: z / math.sqrt(survivors), "local-dp": lambda z, survivors: z}


@settings(max_examples=8, deadline=None)
@given(noise=st.sampled_from(sorted(NOISES)), z=st.floats(0.3, 3.0), m=st.integers(2, 10), d=st.integers(2, 24),
       dropped=st.integers(0, 1), between=st.sampled_from(["", "rotation > ", "randk(k=2) > "]), seed=st.integers(0, 2**16))
def test_ckks_builds_up_to_the_stated_noisy_headroom_and_its_clients_then_encrypt(noise, z, m, d, dropped, between, seed):
    """Held: the largest clip that builds `clip > [rotation | randk] > noise > ckks` is the analytic one, m (c + s u) +
    (m + 2) err < 2**19 with s = z c / sqrt(survivors) (gaussian) or z c (local-dp) and u over the m d' coordinates at the
    layer (d' after padding to a power of 2, or rand-k's k); at that clip an honest round of spikes (a coordinate at the
    clip, plus the noise) is encrypted by every client, and 0.1 % above it the stack is refused naming clip."""
    params = preset("ckks-8192-sum")
    d_at = {"": d, "rotation > ": 1 << (d - 1).bit_length(), "randk(k=2) > ": 2}[between]
    survivors = m - dropped
    u = math.sqrt(2 * math.log(2 * m * d_at / HONEST_TAIL))
    want = (ckks_headroom(params) - (m + 2) * fresh_error_bound(params)) / (m * (1 + NOISES[noise](z, survivors) * u))
    context = StackContext(dim=d, participants=m, expected=survivors)
    text = lambda c: f"clip(bound={c!r}) > {between}{noise}(noise_multiplier={z!r}) > ckks"  # noqa: E731
    stack = build(parse(text(want * (1 - 1e-6))), context)
    with pytest.raises(StackError) as above:
        build(parse(text(want * 1.001)), context)
    assert above.value.field == "clip"
    spikes = np.tile(np.eye(d, dtype=np.float32)[seed % d] * 1e9, (m, 1))
    assert len(secure_sum(spikes, protocol=stack, seed=seed).included) == m


def test_hidden_state_builds_up_to_its_weighted_noisy_bound():
    """Held: hidden-state's weight 1/m enters the build bound: offset + m (1/m) (c + s u) + (m + 2) err < 2**18 (what the
    key holder re-encrypts), so the largest clip is m times the sum round's, and its honest spikes are encrypted."""
    params, z, offset = preset("ckks-8192-sum"), 1.0, 3.0
    u = math.sqrt(2 * math.log(2 * N * D / HONEST_TAIL))
    want = (ckks_encodable(params) - offset - (N + 2) * fresh_error_bound(params)) / (1 + z / math.sqrt(N) * u)
    initial = np.full(D, offset)
    text = lambda c: f"clip(bound={c!r}) > gaussian(noise_multiplier={z}) > hidden-state"  # noqa: E731
    stack = _build(text(want * (1 - 1e-6)), initial=initial)
    with pytest.raises(StackError):
        _build(text(want * 1.001), initial=initial)
    assert len(secure_sum(_spikes(1e9), protocol=stack, seed=3).included) == N


# 3. ckks-robust's stated honest rejection probability -------------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(clip=st.floats(0.1, 10.0), s=st.floats(0.01, 3.0), d=st.integers(1, 4096), above=st.floats(-1.0, 8.0))
def test_the_stated_rejection_probability_bounds_the_exact_one(clip, s, d, above):
    """Held: for the worst honest input (norm exactly the clip), ||x + g||**2 / s**2 is noncentral chi-square (d, (c/s)**2);
    its exact tail over (norm_bound / s)**2 never exceeds honest_rejection_bound(d), at any norm_bound around c + s sqrt(d)."""
    from protocols.he import CKKSRobust

    bound = clip + s * (math.sqrt(d) + above)
    if not 0 < bound < 300:
        return
    stated = CKKSRobust(rule="krum", f=1, norm_bound=bound, min_clients=1, honest_clip=clip, honest_noise_std=s).honest_rejection_bound(d)
    exact = float(stats.ncx2.sf((bound / s) ** 2, d, (clip / s) ** 2))
    assert exact <= stated * (1 + 1e-9) + 1e-300, (exact, stated)


def test_the_key_holder_accepts_honest_inputs_at_norm_bound_exactly():
    """Held: the key holder's real threshold is at least norm_bound (it accepts squared norms up to norm_bound**2 plus its
    CKKS error bound), so the stated rejection probability, taken at norm_bound, is not below the true rate."""
    stack = _build("clip(bound=2) > ckks-robust(rule=krum, f=1, norm_bound=2)")
    out = secure_sum(_inputs(2.0, seed=5), protocol=stack, seed=0)
    assert not out.rejected


# 4. distributed-noise layers and the ring -------------------------------------------------------------------------------

@pytest.mark.parametrize("second", ["skellam", "ddg"])
def test_two_noise_layers_without_discretize_size_the_ring_for_both(second):
    """Was a break (review 22): the recipe (noise from floats) sized its scale for its own noise alone; it now sizes the ring for hypot(z, the noise inside)."""
    text = f"clip(bound=1) > skellam(noise_multiplier=0.01) > {second}(noise_multiplier=4) > secagg+(bits=20)"
    try:
        stack = _build(text)
    except StackError:
        return
    scale = next(p for p in _chain(stack) if isinstance(p, DiscreteEncode)).scale
    assert scale <= choose_scale(bits=20, clients=N, dim=D, clip=1.0, noise_multiplier=math.hypot(0.01, 4), shares=N) * (1 + 1e-9)


def test_two_noise_mechanisms_inside_discretize_build_in_either_order():
    """Was a break (review 22): discretize lowered its scale for the first layer's sampler range applied to the combined noise; each layer's own z now meets its own range."""
    tail = "secagg(bits=62)"
    skellam_first = _build(f"clip(bound=1) > discretize > skellam(noise_multiplier=1) > ddg(noise_multiplier=1) > {tail}")
    ddg_first = _build(f"clip(bound=1) > discretize > ddg(noise_multiplier=1) > skellam(noise_multiplier=1) > {tail}")
    assert isinstance(skellam_first, type(ddg_first))


@pytest.mark.parametrize("between", ["", "rotation > "])
def test_a_given_scale_with_two_noises_is_checked_against_their_sum(between):
    """Held: a given scale under two noise layers is refused 1 % above choose_scale for sqrt(z1**2 + z2**2) (not for the
    first alone, which allows 2x more), and builds just below it."""
    rotated = bool(between)
    limit = choose_scale(bits=20, clients=N, dim=D, clip=1.0, noise_multiplier=2.5, shares=N, rotated=rotated)
    text = lambda s: f"clip(bound=1) > {between}discretize(scale={s!r}) > skellam(noise_multiplier=1.5) > skellam(noise_multiplier=2) > secagg+(bits=20)"  # noqa: E731
    _build(text(limit * (1 - 1e-6)))
    with pytest.raises(StackError) as above:
        _build(text(limit * 1.01))
    assert above.value.field == "scale"
    assert choose_scale(bits=20, clients=N, dim=D, clip=1.0, noise_multiplier=1.5, shares=N, rotated=rotated) > 1.2 * limit
