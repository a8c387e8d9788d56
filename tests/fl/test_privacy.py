"""Epsilon by observer on tiny runs: each test is an observer, or a client that misbehaves, trying to make a
stated epsilon false."""

import dataclasses
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fl.experiment import ExperimentConfig, run_experiment
from fl.privacy import OBSERVERS, SUM_STACKS, RoundNoise, epsilon_by_observer
from fl.results import epsilon_series, render, save, to_dict
from protocols.accounting import Gaussian, compose_epsilon

TINY = dict(data="breast_cancer", model="logreg", rounds=2, noise_multiplier=1.0)


def _noise(record):
    return next(r.guarantee for r in record.reports if r.guarantee.epsilon is not None)


def test_the_server_which_samples_gets_no_amplification_and_round_one_is_never_below_its_own_epsilon():
    # the sampler: it drew the 5 of 10 participants, so epsilon must be that of the rounds' noise, unamplified
    result = run_experiment(ExperimentConfig(stack="ddp+secagg+", clients=10, sample_fraction=0.5, **TINY))
    first, last = result.rounds[0], result.rounds[-1]
    for name, observer in first.epsilon_by_observer.items():
        assert observer.epsilon >= first.epsilon * (1 - 1e-9), name
    mechanisms = [_noise(r).dp_mechanism for r in result.rounds]
    assert last.epsilon_by_observer["server"].epsilon == pytest.approx(compose_epsilon(mechanisms, delta=1e-5))
    assert "no amplification" in last.epsilon_by_observer["server"].assumptions
    # fixed-size sampling hidden from the released model: the without-replacement bound, or the unamplified one if smaller
    amplified = compose_epsilon(mechanisms, sampling_rate=0.5, sampling="without_replacement", delta=1e-5)
    released = last.epsilon_by_observer["released model"]
    assert released.epsilon == pytest.approx(min(amplified, compose_epsilon(mechanisms, delta=1e-5))) == last.cumulative_epsilon
    assert "without replacement" in released.assumptions


def test_a_sampled_fraction_of_many_clients_is_amplified_against_the_released_model_only():
    result = run_experiment(ExperimentConfig(stack="ddp+secagg+", clients=40, sample_fraction=0.1, **{**TINY, "noise_multiplier": 4.0}))
    by = result.rounds[-1].epsilon_by_observer
    mechanisms = [_noise(r).dp_mechanism for r in result.rounds]
    assert by["server"].epsilon == pytest.approx(compose_epsilon(mechanisms, delta=1e-5))
    amplified = compose_epsilon(mechanisms, sampling_rate=0.1, sampling="without_replacement", delta=1e-5)
    assert by["released model"].epsilon == pytest.approx(amplified) and amplified < by["server"].epsilon


def test_poisson_participation_with_client_noise_claims_no_amplification():
    # the attack on a Poisson claim: the number of noise shares a sum carries depends on who took part, and its
    # variance shows it over d coordinates, so no observer may be amplified
    config = ExperimentConfig(stack="ddp+secagg+", clients=40, sample_fraction=0.5, participation="poisson", **TINY)
    result = run_experiment(config)
    assert not any(r.aborted for r in result.rounds) and {len(r.included) for r in result.rounds} != {20}  # Poisson, not a fixed 20
    mechanisms = [_noise(r).dp_mechanism for r in result.rounds]
    by = result.rounds[-1].epsilon_by_observer
    assert by["server"].epsilon == pytest.approx(compose_epsilon(mechanisms, delta=config.delta)) == by["released model"].epsilon
    assert "Poisson" in by["released model"].assumptions and "no amplification" in by["released model"].assumptions


def test_byzantine_and_colluding_shares_are_not_counted():
    common = dict(stack="ddp+secagg+", clients=10, seed=4, **TINY)
    clean = run_experiment(ExperimentConfig(**common)).rounds[-1]
    attacked = run_experiment(ExperimentConfig(byzantine=0.2, attack="gaussian", **common)).rounds[-1]
    # SecAgg+ declares 5% colluding clients (ceil(0.5) = 1) and 2 of the 10 clients may be Byzantine, adding no noise
    assert _noise(clean).dp_mechanism.clients == len(clean.included) - 1
    honest_shares = len([i for i in attacked.included if i not in attacked.byzantine]) - 1
    assert _noise(attacked).dp_mechanism.clients == len(attacked.included) - 3 <= honest_shares
    assert attacked.cumulative_epsilon > clean.cumulative_epsilon


@pytest.mark.parametrize("rule", ["krum", "multi_krum"])
def test_servers_that_see_distances_face_each_clients_own_share(rule):
    result = run_experiment(ExperimentConfig(stack="ddp+two-server", rule=rule, clients=8, **TINY))
    noise, by = _noise(result.rounds[-1]), result.rounds[-1].epsilon_by_observer
    own = dataclasses.replace(noise.dp_mechanism, clients=1)
    expected = compose_epsilon([own] * len(result.rounds), delta=1e-5)
    assert set(by) == {"server", "second server", "released model"}
    for name in by:  # the selection depends on the data: the aggregate's noise does not protect against any of them
        assert by[name].epsilon == pytest.approx(expected) and by[name].bound.startswith("local DP"), name
    # each round's own mechanism is one share too, under either rule (review 8: Multi-Krum's m' selected shares are chosen
    # from the noisy inputs, so their sum's noise does not bound what the selection reveals)
    assert all(_noise(r).dp_mechanism == own for r in result.rounds)


def test_central_dp_protects_only_against_the_released_model_and_local_dp_against_everyone():
    central = run_experiment(ExperimentConfig(stack="central-dp", rule="trimmed_mean", clients=8, **TINY)).rounds[-1]
    local = run_experiment(ExperimentConfig(stack="local-dp", rule="krum", clients=8, **TINY)).rounds[-1]
    assert central.epsilon_by_observer["server"].epsilon == math.inf
    one = compose_epsilon([Gaussian(noise_multiplier=1.0)] * 2, delta=1e-5)
    assert central.epsilon_by_observer["released model"].epsilon == pytest.approx(one)
    assert local.epsilon_by_observer["server"].epsilon == local.epsilon_by_observer["released model"].epsilon == pytest.approx(one)
    assert central.accuracy > 0.8 and local.accuracy > 0.5


def test_report_json_and_plot_show_the_same_numbers(tmp_path):
    result = run_experiment(ExperimentConfig(stack="hidden-state", clients=6, **TINY))
    save(result, tmp_path)
    data = json.loads((tmp_path / "result.json").read_text())
    text = (tmp_path / "report.md").read_text()
    assert (tmp_path / "epsilon.png").exists() and render(data) == text == render(to_dict(result))
    series = epsilon_series(data)
    assert data["epsilon_by_observer"] == data["rounds"][-1]["epsilon_by_observer"] and result.epsilon_by_observer == result.rounds[-1].epsilon_by_observer
    assert set(series) == set(OBSERVERS["hidden-state"]) == set(data["rounds"][-1]["epsilon_by_observer"])
    for i, r in enumerate(result.rounds):
        row = next(line for line in text.splitlines() if line.startswith(f"| {r.round} |"))
        for name, observer in r.epsilon_by_observer.items():
            assert series[name][i] == data["rounds"][i]["epsilon_by_observer"][name]["epsilon"] == observer.epsilon
            assert f"| {observer.epsilon:.3g} " in row
    assert "cumulative_epsilon" not in json.dumps([rep["guarantee"]["parameters"] for rep in data["rounds"][-1]["reports"]])


def test_a_round_without_counted_noise_makes_every_noise_observer_infinite():
    mech = Gaussian(noise_multiplier=1.0)
    rounds = [RoundNoise(mech, mech), RoundNoise(None, mech)]
    by = epsilon_by_observer("ddp+secagg+", rounds, delta=1e-5, participation="fixed", sampling_rate=1.0, byzantine_clients=0)
    assert by["server"].epsilon == by["released model"].epsilon == math.inf
    by = epsilon_by_observer("plain", [RoundNoise(None, None)], delta=1e-5, participation="fixed", sampling_rate=1.0, byzantine_clients=0)
    assert by["server"].epsilon == by["released model"].epsilon == math.inf
    by = epsilon_by_observer("plain", [], delta=1e-5, participation="fixed", sampling_rate=1.0, byzantine_clients=0)
    assert by["server"].epsilon == math.inf and by["released model"].epsilon == 0  # nothing released yet; a clear view is infinite whatever the rounds


@settings(max_examples=8, deadline=None)
@given(zs=st.lists(st.floats(0.5, 3.0), min_size=1, max_size=2), q=st.floats(0.05, 1.0), poisson=st.booleans(),
       stack=st.sampled_from(["ddp+secagg+", "ckks", "hidden-state", "central-dp"]))
def test_no_observer_is_below_the_unamplified_rounds_unless_its_sampling_is_hidden_and_of_fixed_size(zs, q, poisson, stack):
    rounds = [RoundNoise(Gaussian(noise_multiplier=z), None) for z in zs]
    participation = "poisson" if poisson else "fixed"
    by = epsilon_by_observer(stack, rounds, delta=1e-5, participation=participation, sampling_rate=q, byzantine_clients=0)
    plain = compose_epsilon([r.aggregate for r in rounds], delta=1e-5)
    single = max(compose_epsilon([r.aggregate], delta=1e-5) for r in rounds)
    for name, observer in by.items():
        if observer.epsilon == math.inf:  # a clear view, or an own-share view (the recomputing key holder) of rounds without own-share noise
            assert OBSERVERS[stack][name] == "clear" or (OBSERVERS[stack][name] == "own share" and all(r.own_share is None for r in rounds)), name
        elif name == "released model" and not poisson and q < 1 and stack in SUM_STACKS:
            assert observer.epsilon <= plain * (1 + 1e-9)
        else:  # the server and the key holder know who took part; the final model is bounded by the rounds too
            assert observer.epsilon <= plain * (1 + 1e-9) and (observer.epsilon >= single * (1 - 1e-9) or stack == "hidden-state"), name
            if OBSERVERS[stack][name] in ("aggregate", "released"):
                assert observer.epsilon == pytest.approx(plain), name
