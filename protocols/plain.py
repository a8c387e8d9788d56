"""The plaintext-sum baseline: clients send their vectors in the clear; the cost of no protection."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from protocols.clear import ClearClient, ClearServer
from protocols.driver import CostMeter, drive
from protocols.masking_messages import Kind, encode_vector, parse_vector
from protocols.protocol import RingProtocol
from protocols.report import Guarantee, LayerReport, Output, ThreatModel
from protocols.schedule import DropoutSchedule, Stage
from protocols.transport import InProcessTransport
from secagg.randomness import Randomness


@dataclass(frozen=True)
class PlainSum(RingProtocol):
    """Sum in the clear over Z_{2^bits}: one round, d * ceil(bits/8) bytes up a client, no privacy."""

    bits: int = 32
    name: str = "plain-sum"

    def run(self, inputs: np.ndarray, dropouts: DropoutSchedule, rng: Randomness, transport: InProcessTransport) -> Output:
        n, d = self.check_inputs(inputs)
        ring, session = self.ring, rng.bytes(8)
        acc = ring.zeros(d)
        server = ClearServer(n, session, Kind.VECTOR, lambda r: parse_vector(r, ring, d), lambda _, y: ring.add(acc, y, out=acc))
        clients = [ClearClient(i, Kind.VECTOR, encode_vector(ring, inputs[i]), session) for i in range(n)]
        meter = CostMeter(n)
        rejected = drive(server, clients, [Stage.MASKED_INPUT], dropouts, transport, meter)
        guarantee = Guarantee(
            threat_model=ThreatModel.NONE,
            server_learns=f"every input in the clear ({len(server.included)} of {n})",
            collusion="none needed: the server sees everything",
            dropout_tolerance=n - 1,
            exact=True,
            parameters={"n": n, "d": d, "bits": self.bits},
        )
        report = LayerReport(self.name, meter.cost(transport, rounds=1), guarantee)
        return Output(acc, tuple(sorted(server.included)), (report,), tuple(rejected))
