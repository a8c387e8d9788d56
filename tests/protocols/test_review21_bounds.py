"""Review 21: stacks that build but whose honest round (every client honest, inputs of any norm, clipped by the stack's
own clip layer) rejects an honest client, aborts, wraps, or states a sensitivity below what reaches the noise. After
329f320 (ckks-robust refuses a norm_bound below `ctx.clip`): that check reads `ctx.clip`, which adaptive-clip and top-k
set to None, and compares with the clip alone, which noise between the clip and the key holder exceeds. Breaks are strict
xfails whose bodies pass once the stack is refused at build (a StackError naming the field) or the round keeps everyone."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import protocols  # noqa: F401  registers every layer
from protocols import secure_sum
from protocols.core.errors import ProtocolError
from protocols.core.stack import StackContext, StackError, build, parse
from protocols.layers.discretize import DiscreteEncode, rounded_l2_bound
from protocols.layers.noise import DistributedNoise
from tests.protocols.stack_walk import chain as _chain

D, N = 8, 6
BROKEN = (AssertionError, ProtocolError)  # what a break raises: an honest client rejected, or the round refused/aborted


def _build(text: str):
    return build(parse(text), StackContext(dim=D, participants=N))


def _inputs(norm: float, seed: int = 1) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(N, D))
    return (x / np.linalg.norm(x, axis=1, keepdims=True) * norm).astype(np.float32)


def _spread(value: float) -> np.ndarray:
    """Every client the same update, all coordinates equal (top-k's error feedback piles the unsent ones up)."""
    return np.full((N, D), value, dtype=np.float32)


def _refused_or_keeps_everyone(text: str, field: str, inputs: np.ndarray, rounds: int) -> None:
    """Once fixed: the stack is refused at build naming `field`, or `rounds` honest rounds (the same protocol object, so
    adaptive-clip's norm and top-k's memory carry over) complete with no client rejected."""
    try:
        stack = _build(text)
    except StackError as exc:
        assert exc.field == field, exc
        return
    for r in range(rounds):
        out = secure_sum(inputs, protocol=stack, seed=r)
        assert not out.rejected and len(out.included) >= 1, (r, out.rejected)


# (a) ckks-robust's norm bound under layers that drop ctx.clip: the 329f320 check never runs ---------------------------

def test_adaptive_clip_norm_above_the_ckks_robust_norm_bound():
    """Was a break (review 21): adaptive-clip passed clip=None inward, so a norm_bound 0.5 below its norm 1 built and the key holder rejected every honest input; now refused at build (ctx.clip_dropped_by), naming norm_bound."""
    _refused_or_keeps_everyone("adaptive-clip(norm=1) > ckks-robust(rule=krum, f=1, norm_bound=0.5)", "norm_bound", _inputs(5.0), 1)


def test_adaptive_clip_growing_past_the_ckks_robust_norm_bound():
    """Was a break (review 21): round 1 held, then C_t grew past 1.01 norm_bound and every honest input was rejected; now refused at build: a fixed clip must sit inside the adaptive one."""
    _refused_or_keeps_everyone("adaptive-clip(norm=1) > ckks-robust(rule=krum, f=1, norm_bound=1)", "norm_bound", _inputs(5.0), 2)


def test_control_adaptive_clip_with_a_fixed_clip_inside_keeps_everyone():
    """Holds: with a fixed clip inside the adaptive one (what its docstring asks), the norm bound is checked against it."""
    stack = _build("adaptive-clip(norm=1) > clip(bound=1) > ckks-robust(rule=krum, f=1)")
    for r in range(2):  # C_2 = 1.105 > 1: the inner clip keeps what reaches the key holder within 1
        assert not secure_sum(_inputs(5.0), protocol=stack, seed=r).rejected
    assert stack.norm > 1.2  # the adaptive norm did move past the key holder's bound (1.01 x 1)


def test_topk_error_feedback_pushes_honest_inputs_past_the_ckks_robust_norm_bound():
    """Was a break (review 21): top-k's error feedback pushed honest inputs past norm_bound in round 3; now refused at build: a clip must sit inside top-k."""
    _refused_or_keeps_everyone("clip(bound=1) > topk(k=1) > ckks-robust(rule=krum, f=1, norm_bound=1)", "norm_bound", _spread(1.0), 3)


def test_noise_between_the_clip_and_ckks_robust_states_how_often_honest_clients_are_rejected():
    """Was a break (review 21): gaussian(noise_multiplier=1) between clip(bound=1) and ckks-robust(norm_bound=1) built, and the
    guarantee said an honest client's norm is its clip, while each honest input reaches the key holder with its noise share
    (stddev z C / sqrt(m) a coordinate): most were rejected. A tight norm_bound under noise is a choice a study of norm
    defences may want, so it still builds; the guarantee now states the noise and that no bound limits the rejections."""
    from protocols.core.stack import innermost

    tight = innermost(_build("clip(bound=1) > gaussian(noise_multiplier=1) > ckks-robust(rule=krum, f=1, norm_bound=1)"))
    assert tight.honest_noise_std == pytest.approx(1 / np.sqrt(N)) and tight.honest_rejection_bound(D) == 1.0
    assert "no bound limits" in tight._honest_noise_note(D) and "its clip plus its noise" in tight.range_note()
    loose = _build("clip(bound=1) > gaussian(noise_multiplier=1) > ckks-robust(rule=krum, f=1, norm_bound=8)")
    out = secure_sum(_inputs(0.9), protocol=loose, seed=0)
    assert not out.rejected and innermost(loose).honest_rejection_bound(D) < 1e-40
    guarantee = next(r.guarantee for r in out.reports if r.layer == "ckks-robust")
    assert "with probability at most" in guarantee.notes and "its clip plus its noise (see the notes)" in guarantee.notes


@settings(max_examples=8, deadline=None)
@given(clip=st.floats(0.5, 4.0), z=st.floats(0.2, 3.0), d=st.integers(1, 64), above=st.floats(0.0, 4.0))
def test_the_stated_honest_rejection_probability_bounds_the_monte_carlo_rate(clip, z, d, above):
    """honest_rejection_bound against 20,000 draws of ||x + g|| > norm_bound, x of norm clip (the worst honest input), g ~
    N(0, s**2 I_d): the empirical rate stays below the stated bound plus 4 standard errors."""
    from protocols.he import CKKSRobust

    s = z * clip / np.sqrt(N)
    bound = clip + s * (np.sqrt(d) + above)
    protocol = CKKSRobust(rule="krum", f=1, norm_bound=bound, min_clients=1, honest_clip=clip, honest_noise_std=s)
    stated = protocol.honest_rejection_bound(d)
    g = np.random.default_rng(7).normal(scale=s, size=(20_000, d))
    g[:, 0] += clip
    rate = float(np.mean(np.linalg.norm(g, axis=1) > bound))
    assert rate <= stated + 4 * np.sqrt(max(stated, 1e-4) * (1 - min(stated, 0.999)) / 20_000) + 1e-4, (rate, stated)


# (a) CKKS headroom: the build check reads ctx.clip, so under adaptive-clip / top-k it is skipped and the clients refuse ----

def test_adaptive_clip_grows_past_the_ckks_headroom():
    """Was a break (review 21): check_build_headroom skipped clip=None and C_2 passed the headroom; now refused at build, naming clip."""
    _refused_or_keeps_everyone("adaptive-clip(norm=8e4) > ckks", "clip", np.tile(np.eye(D, dtype=np.float32)[0] * 1e6, (N, 1)), 2)


def test_topk_error_feedback_pushes_past_the_ckks_headroom():
    """Was a break (review 21): the headroom check was skipped under top-k and error feedback piled past it in round 4; now refused at build, naming clip."""
    _refused_or_keeps_everyone("clip(bound=8e4) > topk(k=1) > ckks", "clip", _spread(1e5), 4)


@pytest.mark.parametrize("noise", ["gaussian(noise_multiplier=1)", "local-dp(noise_multiplier=1)"])
def test_noise_between_the_clip_and_ckks_skips_the_headroom_check(noise):
    """Was a break (review 21): the headroom check was skipped under float noise; it now adds a Gaussian tail of the noise (honest_coordinate_bound) and refuses the clip."""
    text = f"clip(bound=8e4) > {noise} > ckks"
    try:
        stack = _build(text)
    except StackError as exc:
        assert exc.field in ("clip", "noise_multiplier"), exc
        return
    for r in range(3):
        assert len(secure_sum(np.tile(np.eye(D, dtype=np.float32)[0] * 1e6, (N, 1)), protocol=stack, seed=r).included) == N


def test_control_the_same_clip_without_topk_runs():
    stack = _build("clip(bound=8e4) > ckks")
    for r in range(4):
        assert len(secure_sum(_spread(1e5), protocol=stack, seed=r).included) == N
    assert len(secure_sum(np.tile(np.eye(D, dtype=np.float32)[0] * 1e6, (N, 1)), protocol=stack, seed=0).included) == N


# (b) an explicit discretize scale is never checked against the ring ------------------------------------------------------

WRAPS = ["secagg+", "bfv(bits=32)", "two-server(rule=multi_krum, f=1)", "ddg(noise_multiplier=0.01) > secagg"]


@pytest.mark.parametrize("protection", WRAPS)
def test_an_explicit_scale_wraps_the_ring(protection):
    """Was a break: discretize(scale=1e9) was checked only against clip scale <= 2**44, not against the ring: 6 aligned
    honest inputs of norm 0.99 sum to 5.9e9 integer units > 2**31 and the released sum was off by 2**32 / scale = 4.29.
    Now refused at build, naming scale."""
    text = f"clip(bound=1) > discretize(scale=1e9) > {protection}"
    try:
        stack = _build(text)
    except StackError as exc:
        assert exc.field == "scale", exc
        return
    x = np.tile(np.eye(D, dtype=np.float32)[0] * 0.99, (N, 1))
    out = secure_sum(x, protocol=stack, seed=0)
    want = x[list(out.included)].astype(np.float64).sum(axis=0)
    noise = 0.2 if "ddg" in protection else 1e-3  # ddg: noise of stddev 0.01 l2 / scale ~ 0.01 a coordinate; a wrap is 4.29
    assert np.max(np.abs(out.result - want)) < noise


@pytest.mark.parametrize("protection", WRAPS)
def test_control_an_explicit_scale_that_fits_is_exact(protection):
    """The same stacks and tolerances at scale 1e7 (6 x 0.99e7 < 2**28, the narrowest ring here): the sum is right."""
    x = np.tile(np.eye(D, dtype=np.float32)[0] * 0.99, (N, 1))
    out = secure_sum(x, protocol=_build(f"clip(bound=1) > discretize(scale=1e7) > {protection}"), seed=0)
    want = x[list(out.included)].astype(np.float64).sum(axis=0)
    assert np.max(np.abs(out.result - want)) < (0.2 if "ddg" in protection else 1e-3)


# Held: the two-server preset's norm bound against conditional rounding; the noise's sensitivity against the encoder's ----

@settings(max_examples=12, deadline=None)
@given(norm=st.floats(0.01, 100.0), clip=st.sampled_from([0.25, 1.0, 4.0]), seed=st.integers(0, 2**16), aligned=st.booleans(),
       beta=st.sampled_from(["", "beta=0.3", "beta=0.9"]))
def test_two_server_norm_bound_holds_for_every_honest_rounding(norm, clip, seed, aligned, beta):
    """Holds: the norm bound two-server validates, rounded_l2_bound(clip scale, d, beta), floors to B = floor(l2**2) exactly,
    and conditional rounding's float check ||rounded|| <= l2 let no honest input past it here (any norm, clipped; aligned
    inputs reach the fitted ring's edge; a float norm within ~l2 2**-52 of the bound is the only gap left, not hit); the released sum is the selected inputs' within the rounding error."""
    x = np.tile(_inputs(norm, seed)[:1], (N, 1)) if aligned else _inputs(norm, seed)
    stack = _build(f"clip(bound={clip}) > discretize{f'({beta})' if beta else ''} > two-server(rule=multi_krum, f=1)")
    out = secure_sum(x, protocol=stack, seed=seed)
    assert not out.rejected and len(out.included) == N - 1
    clipped = x.astype(np.float64) * np.minimum(1.0, clip / np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True))
    scale = next(p for p in _chain(stack) if isinstance(p, DiscreteEncode)).scale
    assert np.max(np.abs(out.result - clipped[list(out.included)].sum(axis=0))) <= (N - 1) / scale + 1e-9


@pytest.mark.parametrize("text", [
    "clip(bound=1) > skellam(noise_multiplier=1) > secagg+",
    "clip(bound=1) > discretize > ddg(noise_multiplier=1) > secagg",
    "clip(bound=1) > rotation > randk(k=4) > discretize > skellam(noise_multiplier=1) > secagg+",
    "clip(bound=1) > discretize(beta=0) > skellam(noise_multiplier=1) > secagg+",
    "clip(bound=1) > clip(bound=2) > skellam(noise_multiplier=1) > secagg+",
    "adaptive-clip(norm=3) > clip(bound=1) > skellam(noise_multiplier=1) > secagg+",
    "clip(bound=1) > topk(k=2) > clip(bound=1) > skellam(noise_multiplier=1) > secagg+",
])
def test_the_noise_is_sized_for_what_the_encoder_lets_through(text):
    """Holds (c): after a round, the noise layer's L2 sensitivity is at least the encoder's conditional-rounding bound, that
    bound is rounded_l2_bound of the encoder's clip, and that clip is at least the innermost clip (which bounds every
    norm the encoder gets: top-k and adaptive-clip in between are covered only by a fixed clip inside them)."""
    stack = _build(text)
    secure_sum(_inputs(5.0), protocol=stack, seed=2)
    layers = list(_chain(stack))
    encoder = next(p for p in layers if isinstance(p, DiscreteEncode))
    noise = next(p for p in layers if isinstance(p, DistributedNoise))
    assert noise.l2_sensitivity >= encoder.l2_sensitivity - 1e-9
    assert encoder.l2_sensitivity == rounded_l2_bound(encoder.clip * encoder.scale, encoder._d, encoder.beta)
    innermost_clip = [float(s.split("bound=")[1].split(")")[0]) for s in text.split(">") if s.strip().startswith("clip(")][-1]
    assert encoder.clip >= innermost_clip


PREFIXES = ["clip(bound=1) > ", "clip(bound=1) > rotation > ", "clip(bound=1) > rotation(kind=dft) > ", "clip(bound=1) > randk(k=4) > ",
            "clip(bound=2) > clip(bound=1) > ", "clip(bound=1) > topk(k=2) > clip(bound=1) > ", "adaptive-clip(norm=1) > clip(bound=1) > "]
ENCODINGS = ["discretize > ", "discretize(beta=0.5) > ", "discretize(fit=scaled) > ", "skellam(noise_multiplier=1) > ",
             "discretize > ddg(noise_multiplier=2) > "]
RING_LEAVES = [f"two-server(rule={rule}, f=1)" for rule in ("krum", "multi_krum", "centered_clipping", "norm_bounding", "coordinate_median",
                                                              "trimmed_mean")] + ["two-server(rule=krum, f=1, pre=nnm)", "secagg+", "bfv(bits=20)"]


@settings(max_examples=15, deadline=None)
@given(prefix=st.sampled_from(PREFIXES), encoding=st.sampled_from(ENCODINGS), leaf=st.sampled_from(RING_LEAVES),
       shape=st.sampled_from(["random", "aligned", "spike"]), norm=st.floats(0.01, 100.0), seed=st.integers(0, 2**16))
def test_ring_stacks_with_a_fixed_clip_keep_every_honest_client(prefix, encoding, leaf, shape, norm, seed):
    """Holds: with a fixed clip right above the encoding (the layers between keep the norm), every ring stack that builds
    keeps every honest client, at any input norm, aligned inputs and one-coordinate spikes included (no range or norm check
    over the shares refuses them, no round aborts)."""
    try:
        stack = _build(prefix + encoding + leaf)
    except StackError:
        return  # e.g. bfv(bits=20) below a skellam ring sized for more bits
    rows = {"random": _inputs(norm, seed), "aligned": np.tile(_inputs(norm, seed)[:1], (N, 1)),
            "spike": np.tile(np.eye(D, dtype=np.float32)[seed % D] * norm, (N, 1))}[shape]
    out = secure_sum(rows, protocol=stack, seed=seed)
    assert not out.rejected and len(out.included) >= 1


def test_two_noise_layers_inside_discretize_size_the_ring_for_both():
    """Was a break (review 21, reported from reading): the scale was fitted to the first noise layer inside discretize
    alone (`StackContext.noise_inside`), so a small first noise and a large second one got the small one's scale
    (86531 against 27257 at 20 bits) and a wrap probability far above wrap_probability. Now the noises' variances add."""
    def scale(text: str) -> float:
        return _build(f"clip(bound=1) > discretize > {text} > secagg+(bits=20)").inner.scale

    alone = scale("skellam(noise_multiplier=2.5)")
    assert scale("skellam(noise_multiplier=0.01) > skellam(noise_multiplier=2.5)") <= alone
    assert scale("skellam(noise_multiplier=2.5) > skellam(noise_multiplier=0.01)") <= alone
    assert scale("skellam(noise_multiplier=1.5) > skellam(noise_multiplier=2)") == pytest.approx(alone, rel=1e-9)  # 1.5**2 + 2**2 = 2.5**2
