"""Review 9 (A, E): the noise layers' guarantee above a rule that chose from its inputs (268dc22). The epsilon counts
each client's own share; the text beside it must say what the servers see. Breaks are strict xfails."""

import numpy as np

from protocols import secure_sum
from protocols.layers.noise import DistributedNoise
from protocols.two_server.round import TwoServerRobust


def _guarantee(rule: str):
    inner = TwoServerRobust(rule=rule, f=1, bits=24)
    layer = DistributedNoise(mechanism="skellam", local_variance=50.0, l2_sensitivity=10, l1_sensitivity=10, inner=inner)
    out = secure_sum(np.zeros((5, 2), dtype=np.uint32), protocol=layer, seed=4)
    return out, out.reports[-1].guarantee


def test_above_a_selecting_rule_the_layer_counts_one_share_whatever_the_colluders():
    out, g = _guarantee("multi_krum")
    assert out.chosen_from_inputs and g.parameters["counted_shares"] == 1 and g.dp_mechanism.clients == 1


def test_above_a_selecting_rule_the_layer_does_not_say_the_server_learns_the_aggregate_only():
    """Was a break (review 9): server_learns said 'the noisy aggregate only' above a rule that opens each noisy input's
    distances and norms."""
    _, g = _guarantee("multi_krum")
    assert "aggregate only" not in g.server_learns and "distances" in g.server_learns, g.server_learns


def test_against_an_active_s0_that_reads_a_noisy_input_the_one_share_epsilon_holds_and_the_selected_shares_would_not():
    """Review 8 showed an active S0 reads every honest input y_k = x_k + N_k exactly (shifting its own input shares after
    the range check). The layer's epsilon above Multi-Krum (n = 3, m' = 2) is that of one share: exact, Sk(25, 25)
    shifted by Delta = 10, delta at the stated epsilon is below the layer's delta; at the epsilon of the m' = 2 selected
    shares (the count before 268dc22) it is 8e-4."""
    from scipy.stats import skellam

    from protocols.accounting import epsilon
    from protocols.layers.noise import noise_mechanism

    variance, sensitivity = 50.0, 10
    inner = TwoServerRobust(rule="multi_krum", f=1, bits=24)
    layer = DistributedNoise(mechanism="skellam", local_variance=variance, l2_sensitivity=sensitivity, l1_sensitivity=sensitivity, inner=inner)
    g = secure_sum(np.zeros((3, 1), dtype=np.uint32), protocol=layer, seed=4).reports[-1].guarantee
    k = np.arange(-400, 401)
    p, q = skellam(variance / 2, variance / 2).pmf(k), skellam(variance / 2, variance / 2).pmf(k - sensitivity)

    def delta_at(eps: float) -> float:
        return float(max(np.maximum(p - np.exp(eps) * q, 0).sum(), np.maximum(q - np.exp(eps) * p, 0).sum()))

    assert delta_at(g.epsilon) <= g.delta
    selected = epsilon(noise_mechanism("skellam", variance, 2, 1, sensitivity, sensitivity), steps=1, delta=g.delta)
    assert delta_at(selected) > 10 * g.delta
