"""Review 11 (2): after 523dde1 (the adaptive-clip count's noise has assume_colluding=uncounted(ctx, count)). Attacks:
the count runs on its own SecAgg or SecAgg+ (built with that protocol's defaults) among the same clients as the update, so a
server colluding with the clients the update's protection declares knows their count shares too; and with few
participants the uncounted shares reach every share, where the attacked honest client's own share still protects it."""

import math

import numpy as np
import pytest

import protocols  # noqa: F401  registers every layer
from protocols import secure_sum
from protocols.accounting import epsilon
from protocols.core.stack import StackContext, build, parse
from protocols.layers.adaptive_clip import AdaptiveClip

D = 4


def _noise(layer):
    """The first layer along .inner whose clients add noise shares."""
    while layer is not None and not hasattr(layer, "share_mechanism"):
        layer = getattr(layer, "inner", None)
    return layer


def _stack(count: str, protection: str, n: int, **ctx):
    return build(parse(f"adaptive-clip(norm=1, count={count}, count_noise_multiplier=1) > clip(bound=1) > skellam(noise_multiplier=1) > "
                       f"{protection}"), StackContext(dim=D, participants=n, **ctx))


@pytest.mark.parametrize("count", ["secagg", "secagg+"])
def test_regression_the_count_leaves_byzantine_and_its_own_declared_colluders_uncounted(count):
    """Holds (523dde1): Byzantine clients plus the count protocol's declared colluders (SecAgg: none declared; SecAgg+:
    ceil(5% of 6) = 1), as the update's noise over the same protection."""
    stack = _stack(count, count, 6, byzantine=1)
    assert stack.count.assume_colluding == _noise(stack.inner).assume_colluding == 1 + (count == "secagg+")


@pytest.mark.parametrize("count", ["secagg", "secagg+"])
def test_the_count_leaves_the_stacks_declared_colluders_uncounted(count):
    stack = _stack(count, "secagg(colluders=2)", 6)
    assert _noise(stack.inner).assume_colluding == 2  # the update's noise: the declared colluders know their shares
    assert stack.count.assume_colluding >= 2


def _count_epsilon(out) -> float:
    return next(r.guarantee.epsilon for r in out.reports if r.layer == AdaptiveClip.name)


def test_with_few_participants_the_count_still_counts_the_attacked_clients_own_share():
    stack = _stack("secagg+", "secagg+", 3, byzantine=2)
    x = np.full((3, D), 0.1, dtype=np.float32)
    out = secure_sum(x, protocol=stack, seed=2)
    one_share = epsilon(stack.count.share_mechanism(), steps=1, delta=stack.count.delta)
    assert math.isfinite(one_share)
    assert _count_epsilon(out) <= one_share * (1 + 1e-9), (_count_epsilon(out), one_share)


def test_control_with_one_byzantine_client_the_count_is_finite():
    stack = _stack("secagg+", "secagg+", 3, byzantine=1)
    out = secure_sum(np.full((3, D), 0.1, dtype=np.float32), protocol=stack, seed=2)
    assert math.isfinite(_count_epsilon(out))
