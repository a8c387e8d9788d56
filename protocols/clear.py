"""Client and server roles of one-round protocols in which clients send their vectors in the clear
(the plaintext sum, plaintext robust aggregation): request, one vector a client, done."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from protocols.errors import BelowThreshold, MalformedMessage, ReplayedMessage
from protocols.masking_messages import Kind
from protocols.schedule import Stage
from protocols.wire import SERVER, Frame, Reader, decode_frame, encode_frame

STAGE = Stage.MASKED_INPUT.name


class ClearClient:
    """Answers the server's request with one prepared payload of `kind`."""

    def __init__(self, cid: int, kind: Kind, payload: bytes, session: bytes) -> None:
        self.cid, self._kind, self._payload, self._session = cid, kind, payload, session
        self.aborted = False

    def handle(self, data: bytes) -> bytes:
        party = f"client {self.cid}"
        frame = decode_frame(data, party=party, stage=STAGE)
        if frame.kind != Kind.REQUEST or frame.session != self._session or frame.recipient != self.cid:
            raise MalformedMessage("unexpected frame", party=party, stage=STAGE)
        return encode_frame(Frame(self._kind, self._session, self.cid, SERVER, self._payload))


class ClearServer:
    """Requests one vector from each of n clients; `parse` reads a payload, `consume(client, vector)` takes it."""

    def __init__(self, n: int, session: bytes, kind: Kind, parse: Callable[[Reader], np.ndarray], consume: Callable[[int, np.ndarray], None]) -> None:
        self._n, self._session, self._kind, self._parse, self._consume = n, session, kind, parse, consume
        self.included: list[int] = []

    def requests(self) -> dict[int, bytes]:
        return {u: encode_frame(Frame(Kind.REQUEST, self._session, SERVER, u, bytes([Stage.MASKED_INPUT]))) for u in range(self._n)}

    def receive(self, data: bytes, link: int) -> None:
        frame = decode_frame(data, party="server", stage=STAGE)
        if frame.kind != self._kind or frame.session != self._session or frame.sender != link:
            raise MalformedMessage("unexpected frame", party="server", stage=STAGE)
        if frame.sender in self.included:
            raise ReplayedMessage(f"second vector from client {frame.sender}", party="server", stage=STAGE)
        self._consume(frame.sender, self._parse(Reader(frame.payload, party="server", stage=STAGE)))
        self.included.append(frame.sender)

    def close(self) -> None:
        if not self.included:
            raise BelowThreshold("no client sent its input", party="server", stage=STAGE)
