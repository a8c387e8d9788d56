"""End-to-end federated runs on tiny configurations."""

import math

import pytest

from fl.experiment import ExperimentConfig, run_experiment
from protocols.accounting import compose_epsilon


def _final(config):
    return run_experiment(config).rounds[-1]


@pytest.mark.parametrize("stack", ["plain", "secagg+", "robust", "ckks", "ckks-robust", "two-server", "ddp+two-server", "hidden-state"])
def test_each_stack_trains_breast_cancer(stack):
    rule = "multi_krum" if stack in ("ckks-robust", "two-server", "ddp+two-server") else "krum"
    record = _final(ExperimentConfig(stack=stack, rule=rule, clients=10, rounds=6, dropout=0.0 if stack == "robust" else 0.1))
    assert record.accuracy > 0.9


def test_hidden_state_epsilon_uses_the_last_iterate_bound_only_under_its_assumptions():
    from fl.training import LocalConfig

    common = dict(stack="hidden-state", model="logreg", clients=8, rounds=4, noise_multiplier=2.0)
    gd = run_experiment(ExperimentConfig(local=LocalConfig(epochs=1, batch_size=None, lr=0.005), **common)).rounds[-1]
    sgd = run_experiment(ExperimentConfig(local=LocalConfig(epochs=2, batch_size=16, lr=0.005), **common)).rounds[-1]
    final_gd, final_sgd = gd.epsilon_by_observer["released model"], sgd.epsilon_by_observer["released model"]
    # every client in every round at c = 1: the last iterate of a linear loss is the composed Gaussian, so the
    # declared assumptions give no amplification and the sound answer is plain composition (said so in the bound)
    assert not final_gd.bound.startswith("last-iterate") and not final_sgd.bound.startswith("last-iterate")
    assert gd.cumulative_epsilon == final_gd.epsilon and sgd.cumulative_epsilon == final_sgd.epsilon
    assert final_gd.epsilon == pytest.approx(final_sgd.epsilon)
    # the clients see every round's model: plain composition, never below the final model's; the key holder (it
    # recomputes from every client's own ciphertext, review 14) faces each client's own share, never below that
    assert gd.epsilon_by_observer["key holder"].epsilon >= gd.epsilon_by_observer["clients"].epsilon >= final_gd.epsilon
    hidden = next(r for r in gd.reports if r.layer == "hidden-state").guarantee
    assert "no model" in hidden.server_learns


def test_two_server_multi_krum_with_ddp_resists_a_gaussian_attack():
    common = dict(clients=10, rounds=6, byzantine=0.3, attack="gaussian", seed=2, noise_multiplier=0.3)
    robust = _final(ExperimentConfig(stack="ddp+two-server", rule="multi_krum", **common))
    plain = _final(ExperimentConfig(stack="plain", **common))
    assert robust.accuracy > 0.9 and plain.accuracy < robust.accuracy - 0.1
    noise = next(r.guarantee for r in robust.reports if r.layer == "noise")
    assert noise.parameters["uncounted_shares"] == 3  # the 3 possible Byzantine clients may add no noise
    assert noise.parameters["noise_shares_in_output"] == len(robust.included) - 3 < 10 - 3


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
    [({"stack": "he"}, "stack must be"), ({"byzantine": 0.6}, "byzantine"), ({"clients": 2}, "clients"), ({"rule": "bulyan"}, "rule must be"),
     ({"stack": "two-server", "rule": "geometric_median"}, "rule must be")],
)
def test_bad_configs_name_the_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ExperimentConfig(**kwargs)


def test_an_aborted_round_keeps_the_model_spends_privacy_only_against_the_server_and_the_run_goes_on(tmp_path):
    from fl.results import render, save, to_dict

    config = ExperimentConfig(stack="ddp+secagg+", clients=5, rounds=4, dropout=0.4, noise_multiplier=0.5, seed=1)
    result = run_experiment(config)
    assert len(result.rounds) == 4
    aborted = [r for r in result.rounds if r.aborted]
    assert aborted, "this seed makes SecAgg+ lose more than k - t of 5 clients in some round"
    for r in aborted:
        before = result.rounds[r.round - 2] if r.round > 1 else None
        assert r.included == () and r.reports == () and r.epsilon is None
        assert r.cumulative_epsilon == (before.cumulative_epsilon if before else None)  # the released model saw nothing of it
        if before is not None:
            assert r.accuracy == before.accuracy
            if before.epsilon_by_observer["server"].epsilon < float("inf"):  # past "sample": the server may have seen shares
                assert r.epsilon_by_observer["server"].epsilon > before.epsilon_by_observer["server"].epsilon
                assert "aborted round" in r.epsilon_by_observer["server"].assumptions
    save(result, tmp_path)
    assert "aborted:" in render(to_dict(result))


def test_a_refusal_mid_run_aborts_that_round_only_and_the_completed_rounds_are_kept(monkeypatch, tmp_path):
    """A key holder's or dealer's Refused during a round (data-dependent: too few inputs within the norm bound) used to
    end the whole experiment and `run` to discard every completed round. Now the round is recorded as aborted with the
    refusal, the model stays, the noise its clients sent counts against the server, and the next round runs."""
    import fl.experiment as experiment
    from fl.run_commands import run
    from protocols import Refused

    real = experiment.secure_sum

    def refuse_round_2(updates, *, seed, **kwargs):
        if seed % 104_729 == 2:  # the experiment's round seed: seeds["protocol"] * 104_729 + r
            raise Refused("3 inputs within the norm bound: the rule needs > 2f = 4", party="key holder", stage="decrypt")
        return real(updates, seed=seed, **kwargs)

    monkeypatch.setattr(experiment, "secure_sum", refuse_round_2)
    config = ExperimentConfig(stack="ddp+secagg+", clients=5, rounds=3, noise_multiplier=0.5, seed=3)
    result, folder = run(config, tmp_path / "out", progress=False, plots=False)
    first, refused, third = result.rounds
    assert not first.aborted and not third.aborted and third.included
    assert "key holder at decrypt: 3 inputs within the norm bound" in refused.aborted
    assert refused.included == () and refused.accuracy == first.accuracy  # the model stayed
    assert refused.cumulative_epsilon == first.cumulative_epsilon  # the released model saw nothing of round 2
    assert refused.epsilon_by_observer["server"].epsilon > first.epsilon_by_observer["server"].epsilon  # clients had sent noised shares
    assert (folder / "result.json").exists() and "aborted: key holder at decrypt" in (folder / "report.md").read_text()


def test_a_key_holder_refusing_every_round_leaves_a_saved_run_of_aborted_rounds(tmp_path):
    """The key holder's own refusal (a Byzantine majority over the norm bound: 6 of 10 skip the clip, f = 2, so at most
    4 <= 2f inputs are within it) aborts each round; the run completes and is saved."""
    from fl.run_commands import run

    config = ExperimentConfig(stack="ckks-robust", model="logreg", clients=10, sample_fraction=1.0, rounds=2, attackers=6, f=2,
                              attack="gaussian", gaussian_sigma=100.0, byzantine_protocol="skip-clip", seed=0)
    result, folder = run(config, tmp_path / "out", progress=False, plots=False)
    assert [bool(r.aborted) for r in result.rounds] == [True, True]
    assert all(r.aborted.startswith("key holder at decrypt:") and "within the norm bound" in r.aborted for r in result.rounds)
    assert (folder / "result.json").exists()


def test_two_server_experiment_stack_rejects_an_over_norm_byzantine_client():
    """The two-server stack checks ||x|| <= clip scale + sqrt(dim) (ring units) over the shares, not only the
    range: a Byzantine client that skips the clip layer and sends an in-range encoded update over that norm
    is rejected and named; the honest encoded updates (clipped, conditionally rounded) all pass."""
    import numpy as np

    from fl.experiment import build_stack
    from protocols import InvalidInput, secure_sum
    from protocols.layers import rounded_l2_bound
    from secagg.ring import Ring

    config = ExperimentConfig(stack="two-server", rule="multi_krum", clients=6)
    dim = 30
    stack = build_stack(config, dim)
    encode, protocol = stack.inner, stack.inner.inner
    assert protocol.norm_bound == rounded_l2_bound(config.clip * encode.scale, dim, 0.0)
    rng = np.random.default_rng(0)
    updates = rng.normal(size=(6, dim))
    updates *= config.clip / np.linalg.norm(updates, axis=1, keepdims=True)
    ring = Ring(protocol.bits)
    honest = np.round(updates * encode.scale).astype(np.int64)
    assert np.all(np.linalg.norm(honest, axis=1) <= protocol.norm_bound)
    honest[4] = np.trunc(updates[4] / np.abs(updates[4]).max() * (2 ** (protocol.bits - 1) - 1))  # in range, over the norm
    assert np.linalg.norm(honest[4]) > protocol.norm_bound
    out = secure_sum(ring.reduce(honest.astype(np.uint64).astype(ring.dtype)), protocol=protocol, seed=1)
    assert [e.party for e in out.rejected if isinstance(e, InvalidInput)] == ["client 4"] and 4 not in out.included
