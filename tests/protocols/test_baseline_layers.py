"""The central-DP and local-DP baselines: the sensitivity each robust rule is noised for, attacked by
inputs chosen to move the rule's output as far as one zeroed client can."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from protocols import secure_sum
from protocols.accounting import Gaussian
from protocols.layers import CentralGaussian, LocalGaussian, central_dp, local_dp, rule_sensitivity
from protocols.robust import PlainRobust
from protocols.robust.compose import RULES, aggregate


def _clipped(x: np.ndarray, clip: float) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x * np.minimum(1.0, clip / np.maximum(norms, 1e-300))


@settings(max_examples=60, deadline=None)
@given(data=st.data(), n=st.integers(3, 9), d=st.integers(1, 5), rule=st.sampled_from(sorted(RULES)), clip=st.floats(0.1, 10.0))
def test_zeroing_one_clipped_input_moves_no_rule_further_than_its_stated_sensitivity(data, n, d, rule, clip):
    f = data.draw(st.integers(0, (n - 1) // 2))
    x = data.draw(hnp.arrays(np.float64, (n, d), elements=st.floats(-100, 100)))
    x = _clipped(x, clip)
    target = data.draw(st.integers(0, n - 1))
    neighbour = x.copy()
    neighbour[target] = 0.0
    moved = np.linalg.norm(aggregate(x, f, rule) - aggregate(neighbour, f, rule))
    assert moved <= rule_sensitivity(rule, n, f, clip) * (1 + 1e-6) + 1e-6


def test_krum_moves_by_far_more_than_the_means_sensitivity():
    # why the selection rules get 2 clip: zeroing one input flips Krum from one side of the ball to the other
    x = np.array([[1.0, 0.0], [-1.0, 0.0], [-1.0, 0.0]])
    neighbour = x.copy()
    neighbour[1] = 0.0
    moved = np.linalg.norm(aggregate(x, 1, "krum") - aggregate(neighbour, 1, "krum"))
    assert moved == rule_sensitivity("krum", 3, 1, 1.0) == 2.0 and moved == 6 * rule_sensitivity("mean", 3, 1, 1.0)


def test_central_noise_has_the_rules_sensitivity_times_z_and_states_a_gaussian():
    n, d, z = 7, 20_000, 0.7
    x = _clipped(np.random.default_rng(0).normal(size=(n, d)), 1.0).astype(np.float32)
    out = secure_sum(x, protocol=central_dp(PlainRobust("trimmed_mean", f=2), clip=1.0, noise_multiplier=z), seed=1)
    exact = aggregate(x, 2, "trimmed_mean")
    assert np.std(out.result - exact) == pytest.approx(z * 1.0 / (n - 4), rel=0.03)
    g = next(r.guarantee for r in out.reports if r.layer == "central-dp")
    assert g.dp_mechanism == Gaussian(noise_multiplier=z) and g.parameters["sensitivity"] == pytest.approx(1 / 3, rel=1e-5)
    assert "clear" in g.server_learns


def test_central_noise_refuses_what_it_cannot_bound():
    with pytest.raises(ValueError, match="pre-aggregation"):
        CentralGaussian(1.0, 1.0, PlainRobust("krum", f=1, pre="nnm"))
    with pytest.raises(ValueError, match="no sensitivity bound"):
        rule_sensitivity("bulyan", 5, 1, 1.0)
    with pytest.raises(ValueError, match="n > 2f"):
        rule_sensitivity("trimmed_mean", 4, 2, 1.0)


def test_local_noise_is_the_whole_noise_on_each_client_and_its_epsilon_ignores_the_rule():
    n, d, z = 6, 20_000, 0.5
    out = secure_sum(np.zeros((n, d), dtype=np.float32), protocol=local_dp(PlainRobust("krum", f=1), clip=2.0, noise_multiplier=z), seed=2)
    assert np.std(out.result) == pytest.approx(z * 2.0, rel=0.03)  # Krum outputs one client's noisy input
    g = next(r.guarantee for r in out.reports if r.layer == "local-dp")
    assert g.dp_mechanism == Gaussian(noise_multiplier=z)
    with pytest.raises(ValueError, match="expected_clients must be 1"):
        LocalGaussian(z, 1.0, 3, PlainRobust("krum", f=1))
