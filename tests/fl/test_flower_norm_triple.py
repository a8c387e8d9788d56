"""The norm triple on Flower: a two-server centered-clipping round with S1 and the dealer on nodes of their own
(the dealer's "norms" batch, sealed to S1 under its own message kind, relayed by S0) gives the in-process results."""

import pytest

from fl.experiment import ExperimentConfig, run_experiment
from fl.run_commands import run_on_engine

pytest.importorskip("flwr", reason="the Flower engine is the optional extra '.[flower]'")


@pytest.mark.slow
@pytest.mark.usefixtures("flower_sim")
def test_two_server_centered_clipping_on_flower_matches_the_in_process_engine():
    common = dict(clients=5, rounds=1, stack="two-server", rule="centered_clipping", dropout=0.2, seed=0)
    here = run_experiment(ExperimentConfig(**common))
    there = run_on_engine(ExperimentConfig(engine="flower-sim", **common))
    assert [r.included for r in there.rounds] == [r.included for r in here.rounds]
    assert [r.accuracy for r in there.rounds] == [r.accuracy for r in here.rounds]
    assert [r.loss for r in there.rounds] == pytest.approx([r.loss for r in here.rounds], rel=1e-6)
    triples = [rep.guarantee.parameters.get("triple") for r in there.rounds for rep in r.reports]
    assert "norms" in triples and triples == [rep.guarantee.parameters.get("triple") for r in here.rounds for rep in r.reports]
