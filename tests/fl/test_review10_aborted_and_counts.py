"""Review 10 (2, 3, 5): after 894b592 (an aborted hidden-state round counts against the final model), 2c73270 (`secagg
run` exits 1 when every round aborted) and fc64f1e (an adaptive-clip count's own share is its own mechanism). Attacks:
an aborted round whose adaptive-clip count the server already summed (does `aborted` carry it?), the count's noise
under Byzantine clients (whose count shares need not carry noise), and compare's exit status. The first two broke and
are fixed (an aborted round's count enters the accounting; the count's noise leaves Byzantine shares uncounted)."""


import pytest

from fl import experiment
from fl.cli import main
from fl.experiment import ExperimentConfig, run_experiment
from fl.training import LocalConfig
from protocols.accounting import compose_epsilon
from protocols.layers.adaptive_clip import AdaptiveClip
from protocols.layers.noise import noise_mechanism

LOCAL = LocalConfig(epochs=1, batch_size=16, lr=0.1, workers=1)
# the update's noise (multiplier 10 over 6 clients) and the key holder's bound 30 let some rounds through and refuse others;
# the count's noise (multiplier 0.3, sensitivity 1) is by far the larger epsilon of a round
COUNTED_THEN_REFUSED = ("adaptive-clip(norm=1, count_noise_multiplier=0.3) > clip(bound=1) > gaussian(noise_multiplier=10) > "
                        "ckks-robust(rule=krum, norm_bound=30)")


def _run_capturing(monkeypatch, stack: str, rounds: int, **config):
    """The run's records and the (rounds, aborted) fl.experiment handed fl.privacy at each round."""
    calls = []

    def capture(traits, noise_rounds, **kwargs):
        calls.append((list(noise_rounds), list(kwargs.get("aborted", ()))))
        return real(traits, noise_rounds, **kwargs)

    real = experiment.epsilon_by_observer
    monkeypatch.setattr(experiment, "epsilon_by_observer", capture)
    result = run_experiment(ExperimentConfig(clients=6, rounds=rounds, stack=stack, rule="krum", local=LOCAL, **config))
    return result.rounds, calls


def test_an_aborted_rounds_opened_count_counts_against_the_server(monkeypatch):
    records, calls = _run_capturing(monkeypatch, COUNTED_THEN_REFUSED, 3, noise_multiplier=10.0)
    assert [bool(r.aborted) for r in records] == [True, False, True], [r.aborted[:60] for r in records]  # the schedule the attack needs
    count = next(rep.guarantee.dp_mechanism for rep in records[1].reports if rep.layer == AdaptiveClip.name)
    """Was a break (review 10): an aborted round added only the update's own share; its count, summed and opened to the
    server first, was left out (38.08 against at least 93.6 seen). Now the count enters too (one share, an upper bound)."""
    completed, aborted = calls[-1]
    update = completed[0].own_share  # round 2's update (its count query follows it in the list)
    assert len(aborted) == 4 and aborted[0::2] == [update, update]  # each aborted round: the update's share, then the count's
    seen = [n.own_share for n in completed] + [update, update] + [count, count]  # every aborted round's count was opened too
    assert records[-1].epsilon_by_observer["server"].epsilon >= compose_epsilon(seen, delta=1e-5) * (1 - 1e-9)


def test_control_the_count_was_opened_before_the_refusal():
    """The count of a refused round is summed first: the round splits, the count's SecAgg+ stages run beside the
    update's, and at the end AdaptiveClip's finish opens the count's noisy sum before the update's finish, where the key
    holder refuses (stage "decrypt"); the layer's norm did not move (its update follows the inner round)."""
    import dataclasses

    import numpy as np

    from protocols import ProtocolError, secure_sum
    from protocols.core.stack import StackContext, build, parse

    stack = build(parse("adaptive-clip(norm=1, count_noise_multiplier=0.3) > clip(bound=1) > gaussian(noise_multiplier=10) > "
                        "ckks-robust(rule=krum, f=1, norm_bound=1)"), StackContext(dim=4, participants=6))
    opened, real = [], stack.count.open_round

    def open_round(*args, **kwargs):
        round_ = real(*args, **kwargs)
        return dataclasses.replace(round_, finish=lambda end, finish=round_.finish: opened.append(finish(end)) or opened[-1])

    stack.count.open_round = open_round
    with pytest.raises(ProtocolError, match="within the norm bound") as refused:
        secure_sum(np.full((6, 4), 0.1, dtype=np.float32), protocol=stack, seed=1)
    assert refused.value.stage == "decrypt"
    assert len(opened) == 1 and len(opened[0].included) == 6 and stack.norm == 1


def test_regression_an_aborted_hidden_state_round_never_lowers_the_final_models_epsilon():
    """Holds (894b592): under hidden state, the final model's epsilon with an aborted round (its own share composed) is at
    least the one of the same rounds with that round completed (its aggregate composed, or the last iterate)."""
    from fl.privacy import RoundNoise, epsilon_by_observer
    from protocols.accounting import Gaussian

    aggregate, own = Gaussian(noise_multiplier=2.0), Gaussian(noise_multiplier=0.8)
    for last_iterate in (0.01, 1e9):
        def view(rounds, aborted=(), eps=last_iterate):
            return epsilon_by_observer("hidden-state", rounds, delta=1e-5, participation="fixed", sampling_rate=1.0, byzantine_clients=0,
                                       final_model=lambda: (eps, "stand-in"), aborted=aborted)

        done, refused = view([RoundNoise(aggregate, own)] * 3), view([RoundNoise(aggregate, own)] * 2, (own,))
        for observer in done:
            assert refused[observer].epsilon >= done[observer].epsilon, (observer, last_iterate)
        assert refused["released model"].epsilon == pytest.approx(compose_epsilon([aggregate] * 2 + [own], delta=1e-5))


BYZANTINE_COUNT = "adaptive-clip(norm=1, count_noise_multiplier=1) > clip(bound=1) > skellam(noise_multiplier=1) > secagg+"


def test_the_count_query_does_not_count_byzantine_clients_noise():
    record = run_experiment(ExperimentConfig(clients=6, rounds=1, stack=BYZANTINE_COUNT, attackers=1, local=LOCAL)).rounds[-1]
    assert not record.aborted
    update = next(rep.guarantee for rep in record.reports if rep.guarantee.dp_mechanism is not None and rep.layer != AdaptiveClip.name)
    uncounted = update.parameters["uncounted_shares"]
    assert uncounted >= 1  # the update's noise leaves the attacker's share out
    count = next(rep.guarantee for rep in record.reports if rep.layer == AdaptiveClip.name)
    honest = noise_mechanism("skellam", 1.0 / 6, len(record.included) - uncounted, 1, 1.0, 1.0)  # z^2 / survivors a share
    assert count.epsilon >= compose_epsilon([honest], delta=count.delta) * (1 - 1e-9), (count.epsilon, count.dp_mechanism)


ALL_REFUSED = ["--set", "data=breast_cancer", "--set", "model=logreg", "--set", "clients=6", "--set", "rounds=1", "--set", "epochs=1",
               "--set", "workers=1"]


def test_compare_names_a_stack_whose_every_round_aborted_and_exits_0(tmp_path, capsys):
    """Holds (2c73270): compare runs both stacks, names the one whose every round the key holder refused, exits 0."""
    stacks = "clip(bound=1) > gaussian(noise_multiplier=10) > ckks-robust(rule=krum, norm_bound=1); clip(bound=5) > ckks-robust(rule=krum)"
    assert main(["compare", *ALL_REFUSED, "--stacks", stacks, "--out", str(tmp_path / "cmp")]) == 0
    err = capsys.readouterr().err
    assert "every round of clip(bound=1) > gaussian(noise_multiplier=10) > ckks-robust(rule=krum, norm_bound=1) aborted" in err
    assert "every round of clip(bound=5) > ckks-robust(rule=krum) aborted" not in err
