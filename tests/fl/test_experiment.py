"""End-to-end federated runs on tiny configurations."""

import math

import pytest

from fl.experiment import ExperimentConfig, run_experiment
from protocols.accounting import compose_epsilon


def _final(config):
    return run_experiment(config).rounds[-1]


@pytest.mark.parametrize("stack", ["plain", "secagg+", "robust"])
def test_each_stack_trains_breast_cancer(stack):
    record = _final(ExperimentConfig(stack=stack, clients=10, rounds=6, dropout=0.1 if stack == "secagg+" else 0.0))
    assert record.accuracy > 0.9


def test_ddp_stack_reports_the_accountants_epsilon():
    config = ExperimentConfig(stack="ddp+secagg+", clients=12, rounds=3, noise_multiplier=0.5, bits=20)
    result = run_experiment(config)
    mechanisms = [next(r.guarantee.dp_mechanism for r in rec.reports if r.guarantee.dp_mechanism is not None) for rec in result.rounds]
    assert result.rounds[-1].cumulative_epsilon == pytest.approx(compose_epsilon(mechanisms, sampling_rate=1.0, delta=config.delta))
    assert 0 < result.rounds[0].epsilon < result.rounds[-1].cumulative_epsilon < math.inf
    assert [r.layer for r in result.rounds[0].reports] == ["secagg+", "noise", "discretize", "rotation", "clip"]


def test_a_robust_stack_resists_a_gaussian_attack_where_plain_averaging_fails():
    common = dict(clients=10, rounds=6, byzantine=0.3, attack="gaussian", seed=2)
    robust = _final(ExperimentConfig(stack="robust", rule="trimmed_mean", **common))
    plain = _final(ExperimentConfig(stack="plain", **common))
    clean = _final(ExperimentConfig(stack="plain", clients=10, rounds=6, seed=2))
    assert robust.accuracy > clean.accuracy - 0.05
    assert plain.accuracy < robust.accuracy - 0.1


def test_progress_callback_and_partial_results():
    seen = []

    def stop_after_two(record):
        seen.append(record.round)
        if record.round == 2:
            raise KeyboardInterrupt

    result = run_experiment(ExperimentConfig(stack="plain", clients=5, rounds=5), on_round=stop_after_two)
    assert seen == [1, 2] and result.interrupted and [r.round for r in result.rounds] == [1, 2]


@pytest.mark.parametrize(
    "kwargs, match",
    [({"stack": "he"}, "stack must be"), ({"byzantine": 0.6}, "byzantine"), ({"clients": 2}, "clients"), ({"rule": "bulyan"}, "rule must be")],
)
def test_bad_configs_name_the_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ExperimentConfig(**kwargs)
