"""Review round 2 (issue 15): the hidden-state final-model epsilon of the experiment.

Claim (fl/experiment._hidden_state_epsilon): last-iterate amplification only under declared convex, smooth,
contractive steps. Attack: Byzantine clients' updates are no gradients of a convex loss: they can cancel any
contraction (e.g. send +lr lambda x), so the final model is the plain composition of every round's Gaussian
(exact: x_T = x_0 + sum_t (shift_t + noise_t)). With Byzantines in the config, the epsilon the final model's
observer faces must not be below that composition; nor with no noise rounds dropped (aborted rounds are not steps).
"""

import pytest

from fl.experiment import ExperimentConfig, _hidden_state_epsilon
from fl.training import LocalConfig
from protocols.accounting import Gaussian, compose_epsilon


@pytest.mark.parametrize("byzantine, lr, rounds", [(0.2, 0.1, 20), (0.1, 1.0, 5), (0.0, 0.5, 30)])
def test_final_model_epsilon_not_below_composition_when_steps_need_not_contract(byzantine, lr, rounds):
    cfg = ExperimentConfig(stack="hidden-state", model="logreg", byzantine=byzantine, local=LocalConfig(epochs=1, batch_size=None, lr=lr))
    mechanisms = [Gaussian(noise_multiplier=1.0)] * rounds
    got = _hidden_state_epsilon(cfg, mechanisms, rounds, feature_norm=2.0)
    plain = compose_epsilon(mechanisms, delta=cfg.delta)
    assert got.epsilon >= plain * (1 - 1e-9), f"{got.bound}: {got.reason}"
