"""Frames between the parties of a two-server round (clients, S0, S1, the dealer), metered per party,
and the payloads they carry: uint64 matrices, and a client's explicit share for S1."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from protocols.core.driver import CostMeter
from protocols.core.errors import BelowThreshold, MalformedMessage
from protocols.core.messages import Kind
from protocols.core.transport import InProcessTransport
from protocols.core.wire import DEALER, SECOND_SERVER, SERVER, Frame, Reader, Writer, decode_frame, encode_frame, party_name

S0, S1 = SERVER, SECOND_SERVER


def encode_matrix(a: np.ndarray) -> bytes:
    """A 2-D uint64 array: rows (u32), columns (u32), little-endian elements."""
    return Writer().u32(a.shape[0]).u32(a.shape[1]).raw(np.ascontiguousarray(a, dtype="<u8").tobytes()).getvalue()


def read_matrix(r: Reader, shape: tuple[int, int]) -> np.ndarray:
    """Reads one matrix of exactly `shape` (leaves the reader open): a read-only view of the frame's bytes."""
    if (r.u32(), r.u32()) != shape:
        raise r.fail(f"matrix is not {shape}")
    return np.frombuffer(r.view(8 * shape[0] * shape[1]), dtype="<u8").reshape(shape).astype(np.uint64, copy=False)


def parse_matrix(r: Reader, shape: tuple[int, int]) -> np.ndarray:
    out = read_matrix(r, shape)
    r.done()
    return out


def encode_share(x1: np.ndarray, digits: np.ndarray | None, slack: np.ndarray | None) -> bytes:
    """What a client sends S1: its explicit share x1 (d,), then (validated rounds) its digit planes (bits, words)
    and its norm-slack planes (L, 1)."""
    out = encode_matrix(x1[None, :])
    for planes in (digits, slack):
        if planes is not None:
            out += encode_matrix(planes)
    return out


def parse_share(r: Reader, d: int, digits: tuple[int, int] | None, slack: tuple[int, int] | None) -> tuple:
    """The inverse of `encode_share` for the expected shapes (None: not sent)."""
    x1 = read_matrix(r, (1, d))[0]
    out = (x1, *(read_matrix(r, s) if s is not None else None for s in (digits, slack)))
    r.done()
    return out


@dataclass
class Channel:
    """Frames between the parties of one round, metered per party; `dealt` counts the dealer's correlated
    randomness by kind (daBits, edaBits, AND triples in bits, blinding triples in ring elements)."""

    transport: InProcessTransport
    meter: CostMeter
    session: bytes
    dealt: Counter = field(default_factory=Counter)

    def timer(self, party: int):
        if party == S0:
            return self.meter.server()
        if party in (S1, DEALER):
            return self.meter.party(party_name(party))
        return self.meter.client(party)

    def send(self, src: int, dst: int, kind: Kind, payload: bytes, parse) -> object | None:
        """Carries one frame; the receiver (timed) parses it with `parse(reader)`. None if nothing authentic arrived.

        Raises:
            MalformedMessage: if the first authentic frame does not parse or is not what was expected.
        """
        for arriving in self.transport.carry(src, dst, encode_frame(Frame(kind, self.session, src, dst, payload))):
            with self.timer(dst):
                frame = decode_frame(arriving, party=party_name(dst), stage="two-server")
                if frame.kind != kind or frame.session != self.session or frame.sender != src:
                    raise MalformedMessage("unexpected frame", party=party_name(dst), stage="two-server")
                return parse(Reader(frame.payload, party=party_name(dst), stage="two-server"))
        return None

    def to_both(self, src: int, payload: dict[int, bytes], parse: dict[int, object], what: str) -> dict[int, object]:
        """`src` (the dealer) sends each server its payload; raises BelowThreshold unless both arrive."""
        got = {p: self.send(src, p, Kind.MATRIX, payload[p], parse[p]) for p in (S0, S1)}
        if any(v is None for v in got.values()):
            raise BelowThreshold(f"{what} did not arrive", party="server", stage=what)
        return got

    def exchange(self, kind: Kind, mine: dict[int, np.ndarray], shape: tuple[int, int], combine=np.add) -> np.ndarray:
        """Both servers open their shares to each other; returns the opened `combine(share0, share1)`."""
        got0 = self.send(S1, S0, kind, encode_matrix(mine[S1]), lambda r: parse_matrix(r, shape))
        got1 = self.send(S0, S1, kind, encode_matrix(mine[S0]), lambda r: parse_matrix(r, shape))
        if got0 is None or got1 is None:
            raise BelowThreshold("a server's share did not arrive", party="server", stage="open")
        with self.timer(S0):
            return combine(mine[S0], got0)
