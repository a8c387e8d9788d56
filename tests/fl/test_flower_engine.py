"""The Flower simulation engine gives the in-process engine's results for the same seeds, and the core
packages never import flwr."""

import subprocess
import sys

import pytest

from fl.experiment import FLOWER_STACKS, STACKS, ExperimentConfig, run_experiment
from fl.run_commands import run_on_engine

pytest.importorskip("flwr", reason="the Flower engine is the optional extra '.[flower]'")


@pytest.mark.usefixtures("flower_sim")
@pytest.mark.parametrize("stack, active", [("ddp+secagg+", False), ("robust", False), ("secagg+", True), ("two-server", False),
                                           ("ddp+two-server", False), ("plain", False), ("secagg+", False), ("central-dp", False),
                                           ("local-dp", False)])
def test_flower_simulation_matches_the_in_process_engine(stack, active):
    """Active SecAgg+ too: its clients sign under the simulated identities of their positions in both engines, so
    the signed advertisements, and the graph seed hashed from them (a guarantee parameter), are the same."""
    common = dict(clients=5, rounds=2, stack=stack, rule="multi_krum", dropout=0.2, noise_multiplier=0.5, seed=0, active=active)
    here = run_experiment(ExperimentConfig(**common))
    there = run_on_engine(ExperimentConfig(engine="flower-sim", **common))
    assert [r.included for r in there.rounds] == [r.included for r in here.rounds]
    assert [r.accuracy for r in there.rounds] == [r.accuracy for r in here.rounds]
    assert [r.loss for r in there.rounds] == pytest.approx([r.loss for r in here.rounds], rel=1e-6)
    assert [r.cumulative_epsilon for r in there.rounds] == [r.cumulative_epsilon for r in here.rounds]
    last_here, last_there = here.rounds[-1].reports, there.rounds[-1].reports
    assert [r.layer for r in last_there] == [r.layer for r in last_here]
    protection = last_there[0]
    assert protection.cost.bytes_up_mean > 0 and protection.cost.client_seconds_mean > 0
    assert protection.guarantee.parameters == last_here[0].guarantee.parameters
    if active:
        assert protection.guarantee.threat_model.name == "ACTIVE_SERVER" and "never a key the server sends" in protection.guarantee.notes
    if stack.endswith("two-server"):  # S1 and the dealer ran on nodes of their own, S0 relaying every frame
        assert protection.cost.party_seconds["second server"] > 0 and protection.cost.party_seconds["dealer"] > 0
        assert protection.cost.bytes_between["server -> second server"] > protection.cost.bytes_up_mean  # the relayed sealed shares
        assert protection.cost.bytes_between["dealer -> server"] > 0


@pytest.mark.usefixtures("flower_sim")
def test_ckks_on_flower_has_its_key_holder_on_its_own_node():
    common = dict(clients=5, rounds=2, stack="ckks", dropout=0.2, seed=0)
    here = run_experiment(ExperimentConfig(**common))
    there = run_on_engine(ExperimentConfig(engine="flower-sim", **common))
    assert [r.included for r in there.rounds] == [r.included for r in here.rounds]
    bound = there.rounds[-1].reports[0].guarantee.numeric_error
    assert 0 < bound < 1e-2
    assert [r.loss for r in there.rounds] == pytest.approx([r.loss for r in here.rounds], abs=1e-3)  # keys and CKKS noise differ
    cost = there.rounds[-1].reports[0].cost
    assert cost.party_seconds["key holder"] > 0
    assert cost.bytes_between["server -> key holder"] > cost.bytes_up_mean  # the relayed inputs (recompute)


@pytest.mark.slow
@pytest.mark.usefixtures("flower_sim")
@pytest.mark.parametrize("stack", ["ckks-robust", "hidden-state"])
def test_he_stacks_on_flower_match_the_in_process_engine(stack):
    """The key holder is its own SuperNode. Same seeds, same participants and dropouts; the released values differ
    within the stated noise (the keys and the key holder's flooding come from its own CSPRNG on each engine), so
    a robust selection may differ between honest clients whose scores the distance noise can swap."""
    common = {"clients": 5, "rounds": 2, "stack": stack, "rule": "multi_krum", "dropout": 0.2, "seed": 0}
    here = run_experiment(ExperimentConfig(**common))
    there = run_on_engine(ExperimentConfig(engine="flower-sim", **common))
    assert [r.layer for r in there.rounds[-1].reports] == [r.layer for r in here.rounds[-1].reports]
    assert [r.accuracy for r in there.rounds] == pytest.approx([r.accuracy for r in here.rounds], abs=0.02)
    for a, b in zip(here.rounds, there.rounds):
        mine, theirs = a.reports[0].guarantee.parameters, b.reports[0].guarantee.parameters
        cost = b.reports[0].cost
        assert cost.party_seconds["key holder"] > 0 and cost.bytes_between["server -> key holder"] > cost.bytes_up_mean
        if stack == "hidden-state":
            assert b.included == a.included and theirs["sealed_to"] == mine["sealed_to"] == 5
            assert b.loss == pytest.approx(a.loss, abs=1e-3)  # a client's figures: the ServerApp never sees the model
        else:
            assert (theirs["inputs"], theirs["accepted"], len(b.included)) == (mine["inputs"], mine["accepted"], len(a.included))
            assert b.loss == pytest.approx(a.loss, abs=2e-2)


def test_engine_constraints_name_the_field():
    assert set(FLOWER_STACKS) == set(STACKS)  # every preset's layers split
    with pytest.raises(ValueError, match="sample_fraction"):  # the hidden model is boxed to the round's participants only
        ExperimentConfig(engine="flower-sim", stack="hidden-state", sample_fraction=0.5)
    with pytest.raises(ValueError, match="byzantine"):
        ExperimentConfig(engine="flower-sim", byzantine=0.2)
    with pytest.raises(ValueError, match="engine must be one of"):
        ExperimentConfig(engine="grpc")


def test_core_packages_never_import_flwr():
    code = "import sys, secagg, protocols, fl, fl.experiment, fl.cli; print('flwr' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
