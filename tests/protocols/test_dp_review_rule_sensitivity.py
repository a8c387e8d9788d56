"""Review round 2 (issue 15): `rule_sensitivity`, the L2 sensitivity central DP scales its noise to.

Claim (protocols/layers/central_noise.py): over n updates of norm <= C, replacing one by zeros moves the rule's
output by at most rule_sensitivity(rule, n, f, C). Attack: adversarial inputs (points on the sphere, clusters,
ties, the neighbour placed to flip Krum's selection) searched by hypothesis, on the rules the experiment runs.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.layers.central_noise import rule_sensitivity
from protocols.robust.compose import RULES

CLIP = 1.0


def _ball(raw: np.ndarray) -> np.ndarray:
    """Rows scaled into the ball of radius CLIP (rows of norm > CLIP onto the sphere: the extremes)."""
    norms = np.linalg.norm(raw, axis=1, keepdims=True)
    return np.where(norms > CLIP, raw * CLIP / np.maximum(norms, 1e-300), raw)


def _valid(rule: str, n: int, f: int) -> bool:
    try:
        RULES[rule](np.zeros((n, 1)), f)
        rule_sensitivity(rule, n, f, CLIP)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("rule", sorted(RULES))
@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_rule_sensitivity_bounds_zero_out_change(rule, data):
    n = data.draw(st.integers(3, 9))
    f = data.draw(st.integers(0, (n - 1) // 2))
    if not _valid(rule, n, f):
        return
    d = data.draw(st.integers(1, 3))
    scale = data.draw(st.sampled_from([0.01, 1.0, 10.0]))
    raw = np.array(data.draw(st.lists(st.lists(st.floats(-1, 1), min_size=d, max_size=d), min_size=n, max_size=n))) * scale
    x = _ball(raw)
    k = data.draw(st.integers(0, n - 1))
    y = x.copy()
    y[k] = 0.0
    change = np.linalg.norm(RULES[rule](x.astype(np.float32), f) - RULES[rule](y.astype(np.float32), f))
    bound = rule_sensitivity(rule, n, f, CLIP)
    assert change <= bound * (1 + 1e-5) + 1e-6, f"{rule} n={n} f={f}: moved {change:.6g} > sensitivity {bound:.6g}"


def test_krum_flip_reaches_but_does_not_exceed_two_clip():
    """Two antipodal clusters; the neighbour's update decides which one Krum selects: the change approaches 2C."""
    n, f = 7, 1
    x = np.array([[1.0], [1.0], [1.0], [-1.0], [-1.0], [-1.0], [-1.0]])
    y = x.copy()
    y[3] = 0.0
    change = np.linalg.norm(RULES["krum"](x, f) - RULES["krum"](y, f))
    assert change <= rule_sensitivity("krum", n, f, CLIP) + 1e-9
