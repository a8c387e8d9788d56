"""Review 11 (1): after 523dde1 (an aborted round appends, beside the update's own share, the own share of the count of the
AdaptiveClip `_layer_of` finds along .inner, None if that count has no noise). Attacks: a stack with two adaptive clips
(both counts are opened before the key holder's refusal; `_layer_of` finds the outermost only), and a count without noise
(is an aborted round's count as infinite as a completed round's?)."""

import math

import pytest

from protocols.accounting import compose_epsilon
from protocols.layers.noise import noise_mechanism
from tests.fl.test_review10_aborted_and_counts import _run_capturing as review10_run_capturing

# review 10's schedule: the update's noise (multiplier 10 over 6 clients) against the key holder's bound (30, 32 under two
# adaptive clips) refuses some rounds and lets others through
REFUSED_SOMETIMES = "clip(bound=1) > gaussian(noise_multiplier=10) > ckks-robust(rule=krum, norm_bound={bound})"


def _run_capturing(monkeypatch, stack: str, rounds: int = 3):
    return review10_run_capturing(monkeypatch, stack, rounds, noise_multiplier=10.0)


def _count_share(z: float):
    """One client's share of a count of noise multiplier z over the 6 expected survivors (sensitivity 1, one coordinate)."""
    return noise_mechanism("skellam", z**2 / 6, 1, 1, 1.0, 1.0)


def test_an_aborted_round_counts_every_adaptive_clips_count(monkeypatch):
    stack = "adaptive-clip(norm=1, count_noise_multiplier=1) > adaptive-clip(norm=1, count_noise_multiplier=0.05) > " + REFUSED_SOMETIMES.format(bound=32)
    records, calls = _run_capturing(monkeypatch, stack)
    refused = sum(bool(r.aborted) for r in records)
    assert 0 < refused < len(records), [r.aborted[:60] for r in records]  # the schedule the attack needs
    completed, aborted = calls[-1]
    update = completed[0].own_share  # a completed round's update (its two count queries follow it in the list)
    seen = [n.own_share for n in completed] + [update, _count_share(1.0), _count_share(0.05)] * refused
    assert records[-1].epsilon_by_observer["server"].epsilon >= compose_epsilon(seen, delta=1e-5) * (1 - 1e-9)
    assert len(aborted) == 3 * refused  # each aborted round: the update's share and both counts'


def test_regression_an_aborted_rounds_noiseless_count_is_no_dp_as_a_completed_ones(monkeypatch):
    """Holds (523dde1): a count without noise enters an aborted round as None beside the update's share, so every observer
    that saw the round is infinite, as after a completed round whose count had no noise."""
    records, calls = _run_capturing(monkeypatch, "adaptive-clip(norm=1) > " + REFUSED_SOMETIMES.format(bound=30))
    refused = [r for r in records if r.aborted]
    assert refused and len(refused) < len(records), [r.aborted[:60] for r in records]
    aborted = calls[-1][1]
    assert len(aborted) == 2 * len(refused) and aborted[1::2] == [None] * len(refused) and None not in aborted[0::2]
    for record in records:
        for observer, eps in record.epsilon_by_observer.items():
            if observer != "released model" or not record.aborted:
                assert math.isinf(eps.epsilon), (record.round, observer, eps)


def test_a_first_aborted_round_is_as_finite_as_its_opened_shares():
    from fl.privacy import RoundNoise, epsilon_by_observer
    from protocols.accounting import Gaussian
    from protocols.core.stack import parse, traits

    stack = traits(parse("adaptive-clip(norm=1, count_noise_multiplier=1) > " + REFUSED_SOMETIMES.format(bound=30)))
    update, count = Gaussian(noise_multiplier=4.0), _count_share(1.0)

    def view(rounds, aborted=()):
        return epsilon_by_observer(stack, rounds, delta=1e-5, participation="fixed", sampling_rate=1.0, byzantine_clients=0, aborted=aborted)

    completed = view([RoundNoise(update, update), RoundNoise(count, count)])
    assert all(math.isfinite(e.epsilon) for e in completed.values())  # the same round, completed: finite for every observer
    refused = view([], [update, count])
    assert refused["server"].epsilon == pytest.approx(compose_epsilon([update, count], delta=1e-5)), refused["server"]
