"""Adaptive clipping and top-k with error feedback on Flower's simulation engine: with client sampling the same
seeds give the in-process rounds exactly, so each node kept its own residual (in its node state) and clipped
to the norm the server announced. The stack is built by hand (`build`) until stacks are data."""

import pytest

from fl.experiment import ExperimentConfig, build_stack, run_experiment
from protocols import SecAgg
from protocols.layers import AdaptiveClip, DistributedNoise, TopK

pytest.importorskip("flwr", reason="the Flower engine is the optional extra '.[flower]'")


def adaptive_top_k(config: ExperimentConfig, dim: int, initial=None, *, participants: int | None = None):
    """adaptive clip (its count under SecAgg with Skellam noise) > top-k (a tenth of the coordinates) > the config's stack."""
    count = DistributedNoise("skellam", 0.5, 1.0, 1.0, SecAgg(bits=16))
    inner = TopK(max(1, dim // 10), build_stack(config, dim, initial, participants=participants))
    return AdaptiveClip(norm=0.05, target_quantile=0.5, learning_rate=0.5, count=count, inner=inner)


@pytest.mark.slow
@pytest.mark.usefixtures("flower_sim")
def test_adaptive_clip_and_top_k_on_flower_give_the_in_process_rounds():
    from fl.flower_engine import run_flower_simulation

    common = {"clients": 6, "sample_fraction": 0.67, "rounds": 3, "stack": "secagg+", "dropout": 0.2, "seed": 3}
    here = run_experiment(ExperimentConfig(**common), build=adaptive_top_k)
    there = run_flower_simulation(ExperimentConfig(engine="flower-sim", **common), build=adaptive_top_k)
    assert [r.included for r in there.rounds] == [r.included for r in here.rounds]
    assert [r.accuracy for r in there.rounds] == [r.accuracy for r in here.rounds]
    assert [r.loss for r in there.rounds] == pytest.approx([r.loss for r in here.rounds], rel=1e-6)
    norms = [[rep.guarantee.parameters for rep in r.reports if rep.layer == "adaptive-clip"] for r in there.rounds]
    assert norms == [[rep.guarantee.parameters for rep in r.reports if rep.layer == "adaptive-clip"] for r in here.rounds]
    assert len({n[0]["norm_used"] for n in norms}) == 3  # the norm moved every round, and the nodes followed it
    assert [rep.layer for rep in there.rounds[-1].reports] == [rep.layer for rep in here.rounds[-1].reports]
