"""Review 11 (3): after 523dde1 (StackContext.clip_bounds_input: cleared by noise shares, local-dp and stochastic
quantization, set again by clip; discretize refuses it cleared). Attacks: the presets and README stacks still build; the
other layers that read ctx.clip as a bound of their inputs (the skellam/ddg/ddp recipe's own DiscreteEncode, quantize's
level span) under a float noise layer; the layers that move the inputs by clearing the clip instead (top-k, adaptive-clip)."""


import numpy as np
import pytest

import protocols  # noqa: F401  registers every layer
from fl.stacks import PRESETS, TRAIT_VALUES, preset_specs
from protocols import secure_sum
from protocols.core.stack import StackContext, StackError, build, parse
from protocols.layers.compression import StochasticQuantize

D, N = 8, 6


def _build(text: str, **ctx):
    return build(parse(text), StackContext(dim=D, participants=N, **ctx))


def _clipped_inputs() -> np.ndarray:
    x = np.random.default_rng(1).normal(size=(N, D))
    return (x / np.linalg.norm(x, axis=1, keepdims=True) * 0.9).astype(np.float32)  # every input within the clip bound 1


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_regression_every_preset_still_builds(name):
    stack = build(preset_specs(name, TRAIT_VALUES), StackContext(dim=D, participants=N, initial=np.zeros(D)))
    assert stack is not None


@pytest.mark.parametrize("text", ["clip(bound=1) > randk(fraction=0.25) > skellam(noise_multiplier=1) > two-server(rule=multi_krum, f=2, pre=nnm)",
                                  "topk(fraction=0.1) > clip(bound=1) > skellam(noise_multiplier=1) > secagg+"])
def test_regression_the_readme_stacks_still_build(text):
    assert _build(text) is not None


@pytest.mark.parametrize("noise", ["gaussian(noise_multiplier=1)", "local-dp(noise_multiplier=1)"])
@pytest.mark.parametrize("recipe", ["skellam(noise_multiplier=1) > secagg+", "ddg(noise_multiplier=1) > secagg+",
                                    "ddp(noise_multiplier=1) > two-server(rule=krum, f=1)"])
def test_float_noise_above_a_distributed_noise_recipe_is_refused_at_build(noise, recipe):
    with pytest.raises(StackError):
        _build(f"clip(bound=1) > {noise} > {recipe}")


def test_regression_a_clip_after_the_float_noise_lets_the_recipe_run():
    stack = _build("clip(bound=1) > gaussian(noise_multiplier=1) > clip(bound=10) > skellam(noise_multiplier=1) > secagg+")
    assert len(secure_sum(_clipped_inputs(), protocol=stack, seed=3).included) == N


def test_quantize_under_float_noise_reports_an_error_that_bounds_it():
    try:
        stack = _build("clip(bound=1) > gaussian(noise_multiplier=5) > quantize(q=8) > secagg+")
    except StackError:
        return  # fixed by refusing the stack
    seen, real = [], StochasticQuantize.encode

    def encode(self, client, row, rng):
        seen.append(np.asarray(row, dtype=np.float64).copy())
        return real(self, client, row, rng)

    StochasticQuantize.encode = encode
    try:
        out = secure_sum(_clipped_inputs(), protocol=stack, seed=3)
    finally:
        StochasticQuantize.encode = real
    claimed = next(r.guarantee.numeric_error for r in out.reports if r.layer == "quantize")
    error = float(np.max(np.abs(out.result - np.sum(seen, axis=0))))  # vs the exact sum of what quantize was given
    assert error <= claimed, (error, claimed)


def test_control_quantize_under_the_clip_alone_is_within_its_error():
    stack = _build("clip(bound=1) > quantize(q=8) > secagg+")
    out = secure_sum(_clipped_inputs(), protocol=stack, seed=3)
    claimed = next(r.guarantee.numeric_error for r in out.reports if r.layer == "quantize")
    assert float(np.max(np.abs(out.result - _clipped_inputs().sum(axis=0)))) <= claimed


BOUNDED = ["discretize > secagg+", "skellam(noise_multiplier=1) > secagg+", "ckks-robust(rule=krum, f=1)", "quantize(q=8) > secagg+"]


@pytest.mark.parametrize("bounded", BOUNDED)
def test_regression_layers_that_move_the_norm_leave_no_clip_to_read(bounded):
    """Holds: top-k (update + error memory) clears ctx.clip, and adaptive-clip without a clip outside it (its norm moves
    each round) leaves none, so every layer inside that reads the clip as a bound (discretize, the noise recipe,
    ckks-robust's default, quantize) is refused."""
    with pytest.raises(StackError, match="clip"):
        _build(f"clip(bound=1) > topk(k=2) > {bounded}")
    with pytest.raises(StackError, match="clip"):
        _build(f"adaptive-clip(norm=1) > {bounded}")


@pytest.mark.parametrize("bounded", BOUNDED)
def test_a_clip_outside_adaptive_clip_is_still_a_bound_inside(bounded):
    """Review 22: clipping to C_t only shrinks, so under a fixed clip outside the adaptive one what reaches the layers
    inside stays within that clip: they build on it, and an honest round keeps every client."""
    stack = _build(f"clip(bound=1) > adaptive-clip(norm=1) > {bounded}")
    out = secure_sum(_clipped_inputs(), protocol=stack, seed=3)
    assert not out.rejected and len(out.included) >= 1  # krum includes the one it selects


def test_regression_the_flag_is_what_discretize_reads():
    """Holds (523dde1): the same stack with the clip bound restored after the noise builds; without it it is refused."""
    with pytest.raises(StackError, match="bounds its inputs"):
        _build("clip(bound=1) > gaussian(noise_multiplier=1) > discretize > secagg+")
    assert _build("clip(bound=1) > gaussian(noise_multiplier=1) > clip(bound=10) > discretize > secagg+") is not None


@pytest.mark.parametrize("noise", ["skellam(noise_multiplier=1)", "ddg(noise_multiplier=1)"])
def test_ring_noise_under_quantize_is_refused_at_build(noise):
    with pytest.raises(StackError):
        _build(f"clip(bound=1) > quantize(q=8) > {noise} > secagg+")
