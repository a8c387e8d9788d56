"""The public entry point: one call that aggregates the inputs of n simulated clients."""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence

import numpy as np

from protocols.core.deviations import Deviation, unprotected
from protocols.core.identity import client_ids
from protocols.core.protocol import Protocol
from protocols.core.report import Output
from protocols.core.schedule import DropoutSchedule
from protocols.core.transport import Hook, InProcessTransport, chain
from secagg.randomness import Randomness, SeededRandomness, SystemRandomness


def secure_sum(
    inputs: np.ndarray,
    *,
    protocol: Protocol,
    dropouts: DropoutSchedule | None = None,
    seed: int | None = None,
    tamper: Hook | None = None,
    wire: Hook | None = None,
    deviations: Mapping[int, Deviation] | None = None,
    clients: Sequence[int] | None = None,
) -> Output:
    """Runs one round of `protocol` over `inputs` (n, d), one row a client: ring elements for ring protocols
    (SecAgg, SecAgg+, BFV, two-server), floats for CKKS and the plaintext robust layer, whatever the outer
    layer of a stack takes.

    With `seed=None` every secret (keys, seeds, shares, nonces) comes from the OS CSPRNG; an integer
    seed makes the whole round reproducible, for simulation and tests only. `tamper` and `wire`
    are the transport's test hooks (see `protocols.core.transport`). `deviations[i]` makes client i deviate on
    purpose (`protocols.core.deviations`): its drop joins `dropouts`, its `tamper` runs before `tamper`, and it
    skips its client-side protection layers. `clients[i]` is the persistent id of the client at row i (default i), which
    keys the state a layer keeps for a client across rounds (`protocols.core.identity`).

    Returns:
        An `Output` whose `result` is the protocol's aggregate of the inputs of `included` (the sum mod 2**bits
        for ring protocols), with one report a layer.

    Raises:
        BelowThreshold: if too few clients survive; no aggregate is revealed.
        ValueError, TypeError: for inputs or parameters that do not fit (`clients` not n distinct ids >= 0).
    """
    rng: Randomness = SystemRandomness() if seed is None else SeededRandomness(seed)
    n = inputs.shape[0] if isinstance(inputs, np.ndarray) and inputs.ndim == 2 else 0
    deviations = dict(deviations or {})
    hooks = [d.tamper for d in deviations.values() if d.tamper is not None] + ([tamper] if tamper else [])
    transport = InProcessTransport(n, rng.fork("links"), tamper=chain(hooks) if hooks else None, wire=wire)
    schedule = (dropouts or DropoutSchedule()).with_drops({i: d.drop for i, d in deviations.items() if d.drop is not None})
    ids = list(range(n)) if clients is None else [operator.index(c) for c in clients]
    if len(ids) != n:
        raise ValueError(f"clients must give one id a row: {n} rows, found {len(ids)} ids")
    with unprotected(frozenset(i for i, d in deviations.items() if d.skip_protection)), client_ids(dict(enumerate(ids))):
        return protocol.run(inputs, schedule, rng, transport)
