"""Review 16 (1): "nothing released" (epsilon 0) when no round completed.

Break (strict xfail): the engine records a round for the accountant (`noise_rounds`) only when the round had noise or an
adaptive-clip query, and `epsilon_by_observer` reads an empty list as "no round completed". A stack without a noise layer
(plain, ckks, secagg+ behind discretize, ...) releases its model after every completed round, yet the released-model observer is
stated epsilon 0, "nothing released", round after round (it was infinite, "no DP", before review 12's fix).
"""

import math

from fl.experiment import ExperimentConfig, run_experiment
from fl.training import LocalConfig


def test_a_model_released_by_a_round_without_noise_is_not_stated_private():
    """Was a break (review 16): a completed round without noise was not recorded, so the released model read epsilon 0 ('nothing released'); it is recorded with no noise now, infinite."""
    result = run_experiment(ExperimentConfig(stack="plain", clients=6, sample_fraction=0.5, data="breast_cancer", model="logreg",
                                             rounds=1, noise_multiplier=1.0,
                                             local=LocalConfig(epochs=1, batch_size=16, lr=0.1, workers=1)))
    record = result.rounds[-1]
    assert not record.aborted and record.included, "the round completed and the model moved on with its sum"
    released = record.epsilon_by_observer["released model"]
    assert released.epsilon == math.inf, f"stated {released.epsilon} ({released.bound})"
