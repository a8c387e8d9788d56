"""The public entry point: one call that aggregates the inputs of n simulated clients."""

from __future__ import annotations

import numpy as np

from protocols.protocol import Protocol
from protocols.report import Output
from protocols.schedule import DropoutSchedule
from protocols.transport import Hook, InProcessTransport
from secagg.randomness import Randomness, SeededRandomness, SystemRandomness


def secure_sum(
    inputs: np.ndarray,
    *,
    protocol: Protocol,
    dropouts: DropoutSchedule | None = None,
    seed: int | None = None,
    tamper: Hook | None = None,
    wire: Hook | None = None,
) -> Output:
    """Runs one round of `protocol` over `inputs` (n, d), one row a client: ring elements for ring protocols
    (SecAgg, SecAgg+, BFV, two-server), floats for CKKS and the plaintext robust layer, whatever the outer
    layer of a stack takes.

    With `seed=None` every secret (keys, seeds, shares, nonces) comes from the OS CSPRNG; an integer
    seed makes the whole round reproducible, for simulation and tests only. `tamper` and `wire`
    are the transport's test hooks (see `protocols.transport`).

    Returns:
        An `Output` whose `result` is the protocol's aggregate of the inputs of `included` (the sum mod 2**bits
        for ring protocols), with one report a layer.

    Raises:
        BelowThreshold: if too few clients survive; no aggregate is revealed.
        ValueError, TypeError: for inputs or parameters that do not fit.
    """
    rng: Randomness = SystemRandomness() if seed is None else SeededRandomness(seed)
    n = inputs.shape[0] if isinstance(inputs, np.ndarray) and inputs.ndim == 2 else 0
    transport = InProcessTransport(n, rng.fork("links"), tamper=tamper, wire=wire)
    return protocol.run(inputs, dropouts or DropoutSchedule(), rng, transport)
