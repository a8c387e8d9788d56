"""The plaintext-sum baseline: clients send their vectors in the clear; the cost of no protection."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from protocols.driver import CostMeter, drive
from protocols.errors import BelowThreshold, MalformedMessage, ReplayedMessage
from protocols.masking_messages import Kind, encode_vector, parse_vector
from protocols.protocol import Protocol
from protocols.report import Guarantee, LayerReport, Output, ThreatModel
from protocols.schedule import DropoutSchedule, Stage
from protocols.transport import InProcessTransport
from protocols.wire import SERVER, Frame, Reader, decode_frame, encode_frame
from secagg.randomness import Randomness
from secagg.ring import Ring

_STAGE = Stage.MASKED_INPUT.name


class _PlainClient:
    def __init__(self, cid: int, ring: Ring, x: np.ndarray, session: bytes) -> None:
        self.cid, self._ring, self._x, self._session = cid, ring, x, session
        self.aborted = False

    def handle(self, data: bytes) -> bytes:
        party = f"client {self.cid}"
        frame = decode_frame(data, party=party, stage=_STAGE)
        if frame.kind != Kind.REQUEST or frame.session != self._session or frame.recipient != self.cid:
            raise MalformedMessage("unexpected frame", party=party, stage=_STAGE)
        payload = encode_vector(self._ring, self._x)
        return encode_frame(Frame(Kind.VECTOR, self._session, self.cid, SERVER, payload))


class _PlainServer:
    def __init__(self, n: int, d: int, ring: Ring, session: bytes) -> None:
        self._n, self._d, self._ring, self._session = n, d, ring, session
        self.acc = ring.zeros(d)
        self.included: list[int] = []

    def requests(self) -> dict[int, bytes]:
        return {u: encode_frame(Frame(Kind.REQUEST, self._session, SERVER, u, bytes([Stage.MASKED_INPUT]))) for u in range(self._n)}

    def receive(self, data: bytes, link: int) -> None:
        frame = decode_frame(data, party="server", stage=_STAGE)
        if frame.kind != Kind.VECTOR or frame.session != self._session or frame.sender != link:
            raise MalformedMessage("unexpected frame", party="server", stage=_STAGE)
        if frame.sender in self.included:
            raise ReplayedMessage(f"second vector from client {frame.sender}", party="server", stage=_STAGE)
        y = parse_vector(Reader(frame.payload, party="server", stage=_STAGE), self._ring, self._d)
        self._ring.add(self.acc, y, out=self.acc)
        self.included.append(frame.sender)

    def close(self) -> None:
        if not self.included:
            raise BelowThreshold("no client sent its input", party="server", stage=_STAGE)


@dataclass(frozen=True)
class PlainSum(Protocol):
    """Sum in the clear over Z_{2^bits}: one round, d * ceil(bits/8) bytes up a client, no privacy."""

    bits: int = 32
    name: str = "plain-sum"

    def run(self, inputs: np.ndarray, dropouts: DropoutSchedule, rng: Randomness, transport: InProcessTransport) -> Output:
        n, d = self.check_inputs(inputs)
        session = rng.bytes(8)
        server = _PlainServer(n, d, self.ring, session)
        clients = [_PlainClient(i, self.ring, inputs[i], session) for i in range(n)]
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
        return Output(server.acc, tuple(sorted(server.included)), (report,), tuple(rejected))
