"""The round loop hands every client its own state between rounds: under Poisson participation each participant
count has its own stack object, and a client's error-feedback residual must still follow the client."""

from dataclasses import dataclass

import numpy as np

from fl.experiment import ExperimentConfig, build_stack, run_experiment
from protocols.core.identity import client_id
from protocols.layers import TopK

LOG: list[tuple[int, np.ndarray | None, np.ndarray]] = []  # every encoding of the run, in order: (client id, residual before, after)
BUILT: list[TopK] = []


@dataclass(eq=False)
class RecordingTopK(TopK):
    def encode(self, client, row, rng):
        cid = client_id(client)
        before = self.memory.get(cid)
        sent = super().encode(client, row, rng)
        LOG.append((cid, None if before is None else before.copy(), self.memory[cid].copy()))
        return sent


def recording_top_k(config, dim, initial=None, *, participants=None):
    BUILT.append(RecordingTopK(max(1, dim // 4), build_stack(config, dim, initial, participants=participants)))
    return BUILT[-1]


def test_a_clients_residual_follows_it_across_stack_objects():
    LOG.clear()
    BUILT.clear()
    config = ExperimentConfig(clients=8, rounds=4, stack="plain", participation="poisson", sample_fraction=0.5, seed=1)
    result = run_experiment(config, build=recording_top_k)
    assert len(BUILT) > 1  # several participant counts: several stack objects
    assert len(LOG) == sum(len(r.included) for r in result.rounds)  # no dropout; a round that aborted at sampling encoded nothing
    last: dict[int, np.ndarray] = {}
    for cid, before, after in LOG:
        if cid in last:
            assert before is not None and np.array_equal(before, last[cid]), f"client {cid} did not get its own residual back"
        else:
            assert before is None
        last[cid] = after
    assert len(LOG) > len(last)  # some client came back
