"""The plaintext-sum baseline: clients send their vectors in the clear; the cost of no protection."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from protocols.core.clear import ClearClient, ClearServer
from protocols.core.messages import Kind, encode_vector, parse_vector
from protocols.core.protocol import OpenRound, RingProtocol, RoundEnd
from protocols.core.report import Guarantee, LayerReport, Output, ThreatModel
from protocols.core.schedule import DropoutSchedule, Stage
from protocols.core.transport import InProcessTransport
from secagg.randomness import Randomness


@dataclass(frozen=True)
class PlainSum(RingProtocol):
    """Sum in the clear over Z_{2^bits}: one round, d * ceil(bits/8) bytes up a client, no privacy."""

    bits: int = 32
    name: str = "plain-sum"

    def run(self, inputs: np.ndarray, dropouts: DropoutSchedule, rng: Randomness, transport: InProcessTransport) -> Output:
        self.check_inputs(inputs)
        return self.run_split(inputs, dropouts, rng, transport)

    def open_round(self, n: int, d: int, rng: Randomness) -> OpenRound:
        ring, session = self.ring, rng.bytes(8)
        acc = ring.zeros(d)
        server = ClearServer(n, session, Kind.VECTOR, lambda r: parse_vector(r, ring, d), lambda _, y: ring.add(acc, y, out=acc))

        def finish(end: RoundEnd) -> Output:
            guarantee = Guarantee(
                threat_model=ThreatModel.NONE,
                server_learns=f"every input in the clear ({len(server.included)} of {n})",
                collusion="none needed: the server sees everything",
                dropout_tolerance=n - 1,
                exact=True,
                parameters={"n": n, "d": d, "bits": self.bits},
            )
            report = LayerReport(self.name, end.meter.cost(end.transport, rounds=1), guarantee)
            return Output(acc, tuple(sorted(server.included)), (report,), tuple(end.rejected))

        return OpenRound({"session": session.hex()}, server, (Stage.MASKED_INPUT,), finish)

    def client_role(self, i: int, row: np.ndarray, public: dict, rng: Randomness, measurements: dict) -> ClearClient:
        return ClearClient(i, Kind.VECTOR, encode_vector(self.ring, self.ring.check(row, "row")), bytes.fromhex(public["session"]))
