"""Review 17 (3): choose_scale(rotated=True) counts the clients' rotated inputs as independent, clients l2**2 / d', but every
client of a round is rotated by the same public H D: the sum's coordinates are those of H D (sum of the inputs), whose norm
is up to clients x l2, not sqrt(clients) x l2. Honest updates are correlated (one gradient direction).

Break (strict xfail): 16 honest clients each sending the same unit vector (a common direction, norm at the clip bound),
clip(bound=1) > rotation > discretize > skellam(noise_multiplier=0.01) > secagg(bits=16) at d = 1024 (scale 42702): the
integer sum leaves the 16-bit ring in 126-133 of the 1024 coordinates a round (stated wrap_probability 1e-6) and the decoded
sum is off by up to 2.0 (stated numeric_error 0.012); the ddp recipe (its own rotation) does the same (off by 2.2).
Independent random unit vectors at the same norm stay inside the ring (max error 0.035). Sizing the inputs' term for the
worst case of a common direction, k clients l2 / sqrt(d') (or clients l2 when it is the smaller condition), holds it.
"""

import warnings

import numpy as np
import pytest

import protocols  # noqa: F401  registers every layer
from protocols import secure_sum
from protocols.core.stack import StackContext, build, parse
from tests.protocols.test_review16_scale import wrapped_per_round


@pytest.mark.parametrize("spec", [
    "clip(bound=1) > rotation > discretize > skellam(noise_multiplier=0.01) > secagg(bits=16)",
    "clip(bound=1) > ddp(noise_multiplier=0.01) > secagg(bits=16)",
])
def test_honest_inputs_in_one_direction_stay_inside_the_ring(monkeypatch, spec):
    """Was a break (review 17): choose_scale sized rotated inputs as independent, while every client is rotated by the same public signs (16 aligned clients wrapped 133 of 1024 coordinates); it sizes for the summed norm clients l2."""
    n, d, bits = 16, 1024, 16
    stack = build(parse(spec), StackContext(dim=d, participants=n))
    v = np.random.default_rng(0).normal(size=d)
    x = np.tile(v / np.linalg.norm(v), (n, 1)).astype(np.float32)  # every client's update: the same direction, at the clip bound
    wrapped = wrapped_per_round(monkeypatch, stack, x, bits, 2)
    assert wrapped == [0, 0], f"coordinates of the integer sum outside the {bits}-bit ring, per round: {wrapped}"


def test_independent_inputs_at_the_clip_bound_stay_inside_the_ring(monkeypatch):
    """The control: the same stack with independent random unit inputs decodes within the noise (no wrap)."""
    n, d = 16, 1024
    stack = build(parse("clip(bound=1) > rotation > discretize > skellam(noise_multiplier=0.01) > secagg(bits=16)"),
                  StackContext(dim=d, participants=n))
    x = np.random.default_rng(1).normal(size=(n, d))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = secure_sum(x, protocol=stack, seed=0)
    assert np.max(np.abs(np.asarray(out.result) - x.sum(axis=0))) < 0.2
