"""Two split rounds run as one (e.g. adaptive clipping's count beside the update): the stages are the union
of theirs, in order, and each message carries both parts.

Payload of a pair message (client <-> server), integers big-endian:

    u32 length | first part | u32 length | second part

A part is a whole frame of its own protocol (session, sender and recipient checked there), or empty when
its protocol has nothing to send at this stage. The pair server counts each part's bytes, so a layer can
report its own share of what the round carried.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from protocols.core.driver import ClientRole
from protocols.core.errors import MalformedMessage, ProtocolError
from protocols.core.protocol import OpenRound
from protocols.core.wire import Reader, Writer


def encode_pair(first: bytes, second: bytes) -> bytes:
    return Writer().blob(first).blob(second).getvalue()


def parse_pair(data: bytes, *, party: str, stage: str) -> tuple[bytes, bytes]:
    """The two parts of an untrusted pair message.

    Raises:
        MalformedMessage: on a truncated part or trailing bytes.
    """
    r = Reader(data, party=party, stage=stage)
    first = r.blob(r.remaining())
    second = r.blob(r.remaining())
    r.done()
    return first, second


@dataclass(frozen=True)
class PartBytes:
    bytes_up: np.ndarray
    bytes_down: np.ndarray
    bytes_between: dict = field(default_factory=dict)


@dataclass
class PairServer:
    """The server role of two opened rounds; `bytes_up[j][u]`, `bytes_down[j][u]`: bytes of part j from and to client u."""

    rounds: tuple[OpenRound, OpenRound]
    n: int
    stages: tuple = field(init=False)
    bytes_up: tuple[np.ndarray, np.ndarray] = field(init=False)
    bytes_down: tuple[np.ndarray, np.ndarray] = field(init=False)

    def __post_init__(self) -> None:
        self.stages = tuple(sorted(set(self.rounds[0].stages) | set(self.rounds[1].stages)))
        self.bytes_up = (np.zeros(self.n, dtype=np.int64), np.zeros(self.n, dtype=np.int64))
        self.bytes_down = (np.zeros(self.n, dtype=np.int64), np.zeros(self.n, dtype=np.int64))
        self._at = -1

    def part(self, j: int) -> PartBytes:
        """The bytes of part j, in the shape `CostMeter.cost` reads."""
        return PartBytes(self.bytes_up[j], self.bytes_down[j])

    def _active(self) -> tuple[bool, bool]:
        stage = self.stages[self._at]
        return stage in self.rounds[0].stages, stage in self.rounds[1].stages

    def requests(self) -> dict[int, bytes]:
        self._at += 1
        parts = [r.server.requests() if on else {} for r, on in zip(self.rounds, self._active())]
        out = {}
        for u in sorted(set(parts[0]) | set(parts[1])):
            first, second = parts[0].get(u, b""), parts[1].get(u, b"")
            self.bytes_down[0][u] += len(first)
            self.bytes_down[1][u] += len(second)
            out[u] = encode_pair(first, second)
        return out

    def receive(self, data: bytes, link: int) -> None:
        """Delivers each part to its round; raises the first part's error after delivering the other."""
        stage = self.stages[self._at].name
        parts = parse_pair(data, party="server", stage=stage)
        errors: list[ProtocolError] = []
        for j, (part, on) in enumerate(zip(parts, self._active())):
            if not part:
                continue
            self.bytes_up[j][link] += len(part)
            try:
                if not on:
                    raise MalformedMessage(f"part {j} from client {link} at a stage its protocol does not have", party="server", stage=stage)
                self.rounds[j].server.receive(part, link=link)
            except ProtocolError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]

    def close(self) -> None:
        for r, on in zip(self.rounds, self._active()):
            if on:
                r.server.close()


@dataclass
class PairClient:
    """One client's roles in the two rounds; aborted once both are."""

    roles: tuple[ClientRole, ClientRole]
    cid: int

    @property
    def aborted(self) -> bool:
        return all(role.aborted for role in self.roles)

    def handle(self, data: bytes) -> bytes:
        parts = parse_pair(data, party=f"client {self.cid}", stage="pair")
        return encode_pair(*(role.handle(part) if part and not role.aborted else b"" for role, part in zip(self.roles, parts)))
