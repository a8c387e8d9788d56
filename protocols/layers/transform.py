"""The base of transform layers: time the per-client transform and the server inverse, run the inner
protocol in between, and append this layer's report. Every transform layer can run with its clients
elsewhere (its round splits into public parameters and a client half)."""

from __future__ import annotations

import abc
import time
from typing import ClassVar

import numpy as np

from protocols.core.deviations import skips_protection
from protocols.core.driver import ClientRole
from protocols.core.measurements import Seconds
from protocols.core.protocol import OpenRound, Protocol, matrix_shape
from protocols.core.report import Cost, Guarantee, LayerReport, Output, ThreatModel
from protocols.core.schedule import DropoutSchedule
from protocols.core.transport import InProcessTransport
from secagg.randomness import Randomness, SeededRandomness


def local_guarantee(n: int, *, exact: bool, parameters: dict, notes: str, numeric_error: float = 0.0,
                    server_learns: str = "nothing from this layer") -> Guarantee:
    """The guarantee of a local transform: no trust involved, any of the n clients may drop."""
    return Guarantee(threat_model=ThreatModel.LOCAL, server_learns=server_learns, collusion="not applicable", dropout_tolerance=n,
                     exact=exact, numeric_error=numeric_error, parameters=parameters, notes=notes)


class TransformLayer(Protocol):
    """Subclasses define `inner`, `encode` (one client's row) and `decode` (the aggregate).

    A round is split (see `protocols.core.protocol`): the server draws a public seed, and both halves call
    `prepare(n, d, SeededRandomness(seed))`, so public per-round choices (rotation signs, kept
    coordinates) agree wherever the clients run. Client i encodes with `rng.fork(name)` from its own
    randomness and records its CPU seconds and `counters(...)` under the layer's name.
    """

    inner: Protocol

    def prepare(self, n: int, d: int, rng: Randomness) -> None:
        """Per-round public setup (a rotation, kept coordinates): the same on the server and every client."""

    def output_dim(self, d: int) -> int:
        """Length of an encoded row for input length d."""
        return d

    COUNTERS: ClassVar[dict[str, tuple[float, ...]]] = {}  # each counter `counters` reports: the values one client's may take

    def counters(self, row: np.ndarray, encoded: np.ndarray) -> dict[str, float]:
        """What a client reports about its transform (summed over clients for the guarantee), each of `COUNTERS`."""
        return {}

    def reported(self) -> dict:
        """{name: {"seconds", each of COUNTERS}} (see `_encode`) and the inner protocol's."""
        return {self.name: {"seconds": Seconds, **self.COUNTERS}, **self.inner.reported()}

    @abc.abstractmethod
    def encode(self, client: int, row: np.ndarray, rng: Randomness) -> np.ndarray:
        """Client `client`'s transform of its row."""

    def unprotected(self, client: int, row: np.ndarray, rng: Randomness) -> np.ndarray:
        """What a client that skips its protection sends this layer's inner protocol (`protocols.core.deviations`):
        the encoding without its clipping, noise or norm condition. Default: the honest `encode`."""
        return self.encode(client, row, rng)

    @abc.abstractmethod
    def decode(self, aggregate: np.ndarray, included: tuple[int, ...]) -> np.ndarray:
        """The server's inverse, on the aggregate of the `included` clients."""

    @abc.abstractmethod
    def guarantee(self, out: Output, totals: dict[str, float]) -> Guarantee:
        """This layer's guarantee, given the inner output (who was included) and the summed client counters."""

    @property
    def splits(self) -> bool:
        return self.inner.splits

    def client_state(self, client: int) -> dict[str, np.ndarray]:
        return self.inner.client_state(client)

    def restore_client_state(self, client: int, state: dict[str, np.ndarray]) -> None:
        self.inner.restore_client_state(client, state)

    def run(self, inputs: np.ndarray, dropouts: DropoutSchedule, rng: Randomness, transport: InProcessTransport) -> Output:
        if self.splits:
            return self.run_split(inputs, dropouts, rng, transport)
        n, d = matrix_shape(inputs)  # an inner protocol that cannot split: encode every row here, then run it in process
        self.prepare(n, d, SeededRandomness(rng.bytes(32)))
        measurements: dict[int, dict] = {i: {} for i in range(n)}
        rows = [self._encode(i, row, rng.fork(f"client {i}"), measurements[i]) for i, row in enumerate(inputs)]
        return self._finish(self.inner.run(np.stack(rows), dropouts, rng, transport), measurements)

    def open_round(self, n: int, d: int, rng: Randomness) -> OpenRound:
        seed = rng.bytes(32)
        self.prepare(n, d, SeededRandomness(seed))
        inner = self.inner.open_round(n, self.output_dim(d), rng)
        public = {"layer": self.name, "seed": seed.hex(), "n": n, "d": d, "inner": inner.public}
        return OpenRound(public, inner.server, inner.stages, lambda end: self._finish(inner.finish(end), end.measurements), inner.clients_ready,
                         inner.use_roster)

    def client_role(self, i: int, row: np.ndarray, public: dict, rng: Randomness, measurements: dict, **identity) -> ClientRole:
        """The inner protocol's role on the encoded row; `identity` (a signing protocol's keyword) goes to it unchanged."""
        if public.get("layer") != self.name:
            raise ValueError(f"public parameters are for layer {public.get('layer')!r}, not {self.name!r}")
        self.prepare(int(public["n"]), int(public["d"]), SeededRandomness(bytes.fromhex(public["seed"])))
        return self.inner.client_role(i, self._encode(i, row, rng, measurements), public["inner"], rng, measurements, **identity)

    def _encode(self, i: int, row: np.ndarray, rng: Randomness, measurements: dict) -> np.ndarray:
        start = time.thread_time()
        encoded = (self.unprotected if skips_protection(i) else self.encode)(i, row, rng.fork(self.name))
        measurements[self.name] = {"seconds": time.thread_time() - start, **self.counters(row, encoded)}
        return encoded

    def _finish(self, out: Output, measurements: dict[int, dict]) -> Output:
        mine = [m[self.name] for m in measurements.values() if self.name in m]
        totals: dict[str, float] = {}
        for m in mine:
            for key, value in m.items():
                totals[key] = totals.get(key, 0.0) + value
        start = time.thread_time()
        result = self.decode(out.result, out.included)
        cost = Cost.local(np.array([m["seconds"] for m in mine]), time.thread_time() - start)
        return out.then(result, LayerReport(self.name, cost, self.guarantee(out, totals)))
