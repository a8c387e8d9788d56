"""Review 10 (4): after dd3653c (StackContext.clip_bounds_input; ckks-robust without norm_bound under a layer that
changes the inputs after the clip is refused at build). Attacks: the other layers that change the inputs after the
clip, and the other layers that default a bound from the clip. Three broke (local-dp left the flag, discretize ignored
it, an inner clip did not restore it); fixed, they are regression tests."""

import numpy as np
import pytest

import protocols  # noqa: F401  registers every layer
from protocols import secure_sum
from protocols.core.stack import StackContext, StackError, build, parse

D, N = 8, 6


def _build(text: str):
    return build(parse(text), StackContext(dim=D, participants=N))


def _clipped_inputs() -> np.ndarray:
    x = np.random.default_rng(1).normal(size=(N, D))
    return (x / np.linalg.norm(x, axis=1, keepdims=True) * 0.9).astype(np.float32)  # every input within the clip bound 1


def test_local_dp_above_ckks_robust_without_norm_bound_is_refused_at_build():
    with pytest.raises(StackError, match="norm_bound"):
        _build("clip(bound=1) > local-dp(noise_multiplier=1) > ckks-robust(rule=krum, f=1)")


@pytest.mark.parametrize("noise", ["gaussian(noise_multiplier=1)", "local-dp(noise_multiplier=1)"])
@pytest.mark.parametrize("protection", ["two-server(rule=krum, f=1)", "secagg+"])
def test_float_noise_above_discretize_is_refused_at_build(noise, protection):
    with pytest.raises(StackError):
        _build(f"clip(bound=1) > {noise} > discretize > {protection}")


@pytest.mark.parametrize("layer", ["gaussian(noise_multiplier=1)", "quantize(q=8)", "topk(k=2)"])
def test_regression_the_layers_the_fix_covers_refuse_a_clip_defaulted_bound(layer):
    """Holds: gaussian and stochastic quantization (and top-k, whose error feedback drops the clip) above ckks-robust
    without a norm_bound are refused at build; the quantize case is refused for its flow (ring inputs), not for the bound."""
    with pytest.raises(StackError, match="norm_bound" if "gaussian" in layer else None):
        _build(f"clip(bound=1) > {layer} > ckks-robust(rule=krum, f=1)")


@pytest.mark.parametrize("layer", ["randk(k=4)", "rotation"])
def test_layers_that_keep_the_bound_still_default_it(layer):
    """Rand-k (keeps coordinates, rescales at the server) and a rotation (an isometry) keep ||x|| <= clip: ckks-robust
    builds with the clip as its norm bound and aggregates clipped inputs."""
    stack = _build(f"clip(bound=1) > {layer} > ckks-robust(rule=krum, f=1)")
    out = secure_sum(_clipped_inputs(), protocol=stack, seed=3)
    assert len(out.included) >= 1


def test_a_clip_after_the_noise_bounds_the_inputs_again_and_the_default_is_accepted():
    stack = _build("clip(bound=1) > gaussian(noise_multiplier=1) > clip(bound=50) > ckks-robust(rule=krum, f=1)")
    assert len(secure_sum(_clipped_inputs(), protocol=stack, seed=3).included) >= 1


def test_control_with_the_inner_clip_as_norm_bound_it_runs():
    stack = _build("clip(bound=1) > gaussian(noise_multiplier=1) > clip(bound=50) > ckks-robust(rule=krum, f=1, norm_bound=50)")
    assert len(secure_sum(_clipped_inputs(), protocol=stack, seed=3).included) >= 1
