"""Client and server roles of one-round protocols in which clients send their vectors in the clear
(the plaintext sum, plaintext robust aggregation): request, one vector a client, done."""

from __future__ import annotations

from collections.abc import Callable

from protocols.core.errors import BelowThreshold, MalformedMessage, ReplayedMessage
from protocols.core.messages import Kind
from protocols.core.schedule import Stage
from protocols.core.wire import SERVER, Frame, Reader, decode_frame, encode_frame

STAGE = Stage.MASKED_INPUT.name


class ClearClient:
    """Answers the server's request with one payload of `kind`: prepared bytes, or a function that makes
    them when the request arrives (e.g. encrypts and signs, so the work is timed as the client's)."""

    def __init__(self, cid: int, kind: Kind, payload: bytes | Callable[[], bytes], session: bytes) -> None:
        self.cid, self._kind, self._payload, self._session = cid, kind, payload, session
        self.aborted = False

    def handle(self, data: bytes) -> bytes:
        party = f"client {self.cid}"
        frame = decode_frame(data, party=party, stage=STAGE)
        if frame.kind != Kind.REQUEST or frame.session != self._session or frame.recipient != self.cid:
            raise MalformedMessage("unexpected frame", party=party, stage=STAGE)
        payload = self._payload() if callable(self._payload) else self._payload
        return encode_frame(Frame(self._kind, self._session, self.cid, SERVER, payload))


class ClearServer:
    """Requests one payload of `kind` from each of n clients; `parse` reads it, `consume(client, value)` takes
    it (and may reject it with a `ProtocolError`: the client is then left out)."""

    def __init__(self, n: int, session: bytes, kind: Kind, parse: Callable[[Reader], object], consume: Callable[[int, object], None]) -> None:
        self._n, self._session, self._kind, self._parse, self._consume = n, session, kind, parse, consume
        self.included: list[int] = []

    def requests(self) -> dict[int, bytes]:
        return {u: encode_frame(Frame(Kind.REQUEST, self._session, SERVER, u, bytes([Stage.MASKED_INPUT]))) for u in range(self._n)}

    def receive(self, data: bytes, link: int) -> None:
        frame = decode_frame(data, party="server", stage=STAGE)
        if frame.kind != self._kind or frame.session != self._session or frame.sender != link:
            raise MalformedMessage("unexpected frame", party="server", stage=STAGE)
        if frame.sender in self.included:
            raise ReplayedMessage(f"second input from client {frame.sender}", party="server", stage=STAGE)
        self._consume(frame.sender, self._parse(Reader(frame.payload, party="server", stage=STAGE)))
        self.included.append(frame.sender)

    def close(self) -> None:
        if not self.included:
            raise BelowThreshold("no client sent its input", party="server", stage=STAGE)
