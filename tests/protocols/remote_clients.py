"""A round as an engine whose clients run elsewhere carries it (`fl.flower_engine`), all in this process: the
server's stack object opens and finishes the round, and each client builds its role on a stack object of its
own, with the state it keeps between rounds restored from its own store (its node's state) and saved back.
The randomness is drawn as `secure_sum(..., seed=seed)` draws it, so both give the same round."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

import numpy as np

from protocols.core.driver import CostMeter, drive
from protocols.core.identity import client_ids
from protocols.core.protocol import Protocol, RoundEnd
from protocols.core.report import Output
from protocols.core.schedule import DropoutSchedule
from protocols.core.transport import InProcessTransport
from secagg.randomness import SeededRandomness


def run_remote(server: Protocol, node: Callable[[int], Protocol], inputs: np.ndarray, *, clients: Sequence[int], store: dict[int, dict],
               dropouts: DropoutSchedule | None = None, seed: int = 0) -> Output:
    """One round: row u is client `clients[u]`, whose stack is `node(clients[u])` (a fresh object, as a node builds
    it from its configuration) and whose state between rounds is `store[clients[u]]`. Public parameters and
    measurements pass through JSON, as over Flower."""
    rng = SeededRandomness(seed)
    n, d = inputs.shape
    transport = InProcessTransport(n, rng.fork("links"))  # what secure_sum draws first
    opened = server.open_round(n, d, rng)
    measurements: dict[int, dict] = {}
    roles = []
    for u, c in enumerate(clients):
        stack, measured = node(c), {}
        stack.restore_client_state(c, store.get(c, {}))
        with client_ids({u: c}):
            roles.append(stack.client_role(u, inputs[u], json.loads(json.dumps(opened.public)), rng.fork(f"client {u}"), measured))
        store[c] = stack.client_state(c)
        measurements[u] = json.loads(json.dumps(measured))
    if opened.clients_ready is not None:
        opened.clients_ready(measurements)
    meter = CostMeter(n)
    dropouts = dropouts or DropoutSchedule()
    rejected = drive(opened.server, roles, opened.stages, dropouts, transport, meter)
    return opened.finish(RoundEnd(meter, transport, rejected, measurements, dropouts))
