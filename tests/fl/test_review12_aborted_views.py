"""Review 12 (2): after fdb25aa (fl/privacy.py: with no completed round, an observer other than the released model whose view
is not "released" faces the aborted rounds' opened shares instead of 'no DP noise reached what it sees'). Attacks, for every
view of every protection: no round completed and some aborted (is every observer who may have seen the opened values
bounded by them, and infinite when one aborted round had no noise?), and the same aborted rounds with one completed
round more (an observer who saw more can have no smaller epsilon)."""

import math

import pytest

from fl.privacy import RoundNoise, epsilon_by_observer
from protocols.accounting import Gaussian, compose_epsilon
from protocols.core.stack import parse, traits

STACKS = {
    "secagg+": "clip(bound=1) > gaussian(noise_multiplier=2) > clip(bound=10) > discretize > secagg+",
    "ckks": "clip(bound=1) > gaussian(noise_multiplier=2) > ckks",
    "ckks-robust": "clip(bound=1) > gaussian(noise_multiplier=2) > ckks-robust(rule=krum, f=1)",
    "two-server": "clip(bound=1) > skellam(noise_multiplier=2) > two-server(rule=krum, f=1)",
    "hidden-state": "clip(bound=1) > gaussian(noise_multiplier=2) > hidden-state",
    "local-dp": "clip(bound=1) > local-dp(noise_multiplier=2) > robust(rule=krum, f=1)",
}
UPDATE, OWN = Gaussian(noise_multiplier=1.0), Gaussian(noise_multiplier=3.0)  # a round's aggregate noise, one client's own share


def _view(name, rounds, aborted):
    return epsilon_by_observer(traits(parse(STACKS[name])), rounds, delta=1e-5, participation="fixed", sampling_rate=1.0,
                               byzantine_clients=0, aborted=aborted)


@pytest.mark.parametrize("name", sorted(STACKS))
def test_with_no_completed_round_an_observer_of_the_aborted_ones_is_bounded_by_their_opened_shares(name):
    out = _view(name, [], [OWN])
    floor = compose_epsilon([OWN], delta=1e-5)  # what one opened noisy input costs: nobody who saw it is below this
    for observer, eps in out.items():
        if observer != "released model":
            assert eps.epsilon >= floor * (1 - 1e-9), (observer, eps)
    unprotected = _view(name, [], [OWN, None])  # a second aborted round opened an input with no noise
    for observer, eps in unprotected.items():
        if observer != "released model":
            assert math.isinf(eps.epsilon), (observer, eps)


@pytest.mark.parametrize("name", sorted(STACKS))
def test_control_an_observer_who_may_have_seen_an_opened_share_is_finite(name):
    out = _view(name, [], [OWN])
    seen = traits(parse(STACKS[name])).observers
    finite = {o for o, v in seen.items() if o != "released model" and v != "released" and v != "clear"}
    assert finite and all(math.isfinite(out[o].epsilon) for o in finite), out


@pytest.mark.parametrize("name", ["secagg+", "ckks"])
def test_an_observer_who_saw_less_has_no_larger_epsilon(name):
    """Was a break (review 12): with no completed round the released model was infinite ('no DP noise reached what it
    sees'), where nothing was released; now it is 0, and one completed round more makes it finite."""
    less, more = _view(name, [], [OWN]), _view(name, [RoundNoise(UPDATE, OWN)], [OWN])
    for observer in less:
        assert less[observer].epsilon <= more[observer].epsilon * (1 + 1e-9), (observer, less[observer], more[observer])


@pytest.mark.parametrize("name", sorted(STACKS))
def test_control_the_observers_other_than_the_released_model_are_monotone(name):
    less, more = _view(name, [], [OWN]), _view(name, [RoundNoise(UPDATE, OWN)], [OWN])
    for observer, view in traits(parse(STACKS[name])).observers.items():
        if observer != "released model" and view != "released":
            assert less[observer].epsilon <= more[observer].epsilon * (1 + 1e-9), (observer, less[observer], more[observer])


@pytest.mark.parametrize("name", sorted(STACKS))
def test_with_no_round_at_all_nothing_is_released(name):
    assert _view(name, [], [])["released model"].epsilon == 0


def test_a_hidden_state_model_moved_on_by_an_aborted_round_is_not_free():
    out = epsilon_by_observer(traits(parse(STACKS["hidden-state"])), [], delta=1e-5, participation="fixed", sampling_rate=1.0,
                              byzantine_clients=0, aborted=[OWN], final_model=lambda: (0.0, "unused"))
    assert out["released model"].epsilon >= compose_epsilon([OWN], delta=1e-5) * (1 - 1e-9), out
