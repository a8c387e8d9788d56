"""A ckks-robust norm_bound below the clip outside it: the key holder would reject honest clipped inputs whose norm lies
between the two as if they were Byzantine (its guarantee says an honest client's norm is its clip). Refused at build,
naming norm_bound, its value and the clip's."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import protocols  # noqa: F401  registers every layer
from protocols import secure_sum
from protocols.core.stack import StackContext, StackError, build, parse

D, N = 8, 6


def _build(text: str):
    return build(parse(text), StackContext(dim=D, participants=N))


def _inputs(norm: float) -> np.ndarray:
    x = np.random.default_rng(1).normal(size=(N, D))
    return (x / np.linalg.norm(x, axis=1, keepdims=True) * norm).astype(np.float32)


@settings(max_examples=10, deadline=None)
@given(clip=st.floats(0.5, 8.0), ratio=st.floats(0.05, 0.99), between=st.sampled_from(["", " > gaussian(noise_multiplier=1)", " > rotation"]))
def test_a_norm_bound_below_the_clip_is_refused_at_build(clip, ratio, between):
    bound = clip * ratio
    with pytest.raises(StackError, match=f"norm_bound.*{bound:g}.*{clip:g}") as caught:
        _build(f"clip(bound={clip}){between} > ckks-robust(rule=krum, f=1, norm_bound={bound})")
    assert caught.value.field == "norm_bound"


def test_the_refused_stack_is_the_one_that_rejected_honest_clipped_inputs():
    """What the refusal prevents: the same protocol built by hand rejects every honest input of norm 0.9 under a bound of 0.5."""
    from protocols.he import CKKSRobust
    from protocols.layers import L2Clip

    protocol = L2Clip(1.0, CKKSRobust(rule="krum", f=1, norm_bound=0.5, min_clients=1))
    with pytest.raises(Exception, match="inputs"):
        secure_sum(_inputs(0.9), protocol=protocol, seed=3)


@pytest.mark.parametrize("bound", [1.0, 1.5])
def test_control_a_norm_bound_at_or_above_the_clip_builds_and_keeps_honest_inputs(bound):
    out = secure_sum(_inputs(0.9), protocol=_build(f"clip(bound=1) > ckks-robust(rule=krum, f=1, norm_bound={bound})"), seed=3)
    assert len(out.included) >= 1 and not out.rejected
