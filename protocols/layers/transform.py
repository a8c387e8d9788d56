"""The base of transform layers: time the per-client transform and the server inverse, run the inner
protocol in between, and append this layer's report."""

from __future__ import annotations

import abc
import time

import numpy as np

from protocols.protocol import Protocol
from protocols.report import Cost, Guarantee, LayerReport, Output, ThreatModel
from protocols.schedule import DropoutSchedule
from protocols.transport import InProcessTransport
from secagg.randomness import Randomness


def local_guarantee(n: int, *, exact: bool, parameters: dict, notes: str, numeric_error: float = 0.0,
                    server_learns: str = "nothing from this layer") -> Guarantee:
    """The guarantee of a local transform: no trust involved, any of the n clients may drop."""
    return Guarantee(threat_model=ThreatModel.LOCAL, server_learns=server_learns, collusion="not applicable", dropout_tolerance=n,
                     exact=exact, numeric_error=numeric_error, parameters=parameters, notes=notes)


class TransformLayer(Protocol):
    """Subclasses define `inner`, `encode` (one client's row) and `decode` (the aggregate)."""

    inner: Protocol

    def prepare(self, inputs: np.ndarray, rng: Randomness) -> None:
        """Per-round public setup (a rotation seed, a dimension): runs once, before any client transform."""

    @abc.abstractmethod
    def encode(self, client: int, row: np.ndarray, rng: Randomness) -> np.ndarray:
        """Client `client`'s transform of its row."""

    @abc.abstractmethod
    def decode(self, aggregate: np.ndarray, included: tuple[int, ...]) -> np.ndarray:
        """The server's inverse, on the aggregate of the `included` clients."""

    @abc.abstractmethod
    def guarantee(self, out: Output) -> Guarantee:
        """This layer's guarantee, given the inner output (who was included)."""

    def run(self, inputs: np.ndarray, dropouts: DropoutSchedule, rng: Randomness, transport: InProcessTransport) -> Output:
        if not isinstance(inputs, np.ndarray) or inputs.ndim != 2:
            raise TypeError(f"inputs must be an (n, d) array, found {getattr(inputs, 'shape', type(inputs).__name__)}")
        self.prepare(inputs, rng)
        seconds = np.zeros(inputs.shape[0])
        rows = []
        for i, row in enumerate(inputs):
            start = time.thread_time()
            rows.append(self.encode(i, row, rng.fork(f"{self.name} client {i}")))
            seconds[i] = time.thread_time() - start
        out = self.inner.run(np.stack(rows), dropouts, rng, transport)
        start = time.thread_time()
        result = self.decode(out.result, out.included)
        cost = Cost.local(seconds, time.thread_time() - start)
        return out.then(result, LayerReport(self.name, cost, self.guarantee(out)))
