"""The interface of a protection layer: an interactive protocol that aggregates n clients' inputs."""

from __future__ import annotations

import abc

import numpy as np

from protocols.report import Output
from protocols.schedule import DropoutSchedule
from protocols.transport import InProcessTransport
from secagg.randomness import Randomness
from secagg.ring import Ring


class Protocol(abc.ABC):
    """Aggregates an (n, d) array, one row a client; reports cost and guarantee."""

    name: str

    @abc.abstractmethod
    def run(self, inputs: np.ndarray, dropouts: DropoutSchedule, rng: Randomness, transport: InProcessTransport) -> Output:
        """One round. `rng` supplies every random choice (secrets included); `transport` carries the frames.

        Raises:
            ValueError: if the inputs do not fit the protocol (shape, dtype, n).
            BelowThreshold: if too few clients survive; nothing is revealed.
        """


class RingProtocol(Protocol):
    """A protocol over vectors of Z_{2^bits}: inputs are (n, d) arrays of the ring's dtype."""

    bits: int

    @property
    def ring(self) -> Ring:
        return Ring(self.bits)

    def check_inputs(self, inputs: np.ndarray) -> tuple[int, int]:
        """Validates an (n, d) array of this protocol's ring; returns (n, d)."""
        self.ring.check(inputs, "inputs")
        if inputs.ndim != 2 or inputs.shape[1] < 1:
            raise ValueError(f"inputs must have shape (n, d) with d >= 1, found {inputs.shape}")
        return inputs.shape
