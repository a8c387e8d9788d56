"""Frames between the parties of a two-server round (clients, S0, S1, the dealer), metered per party,
and the payloads they carry: uint64 matrices, and a client's explicit share for S1.

One program runs both servers' halves. In process (`here=None`) it computes every party's values and the
transport carries each frame. Split (`here=S0` or `here=S1`, see `protocols.two_server.remote`) each server
runs the same program on its own data: the other party's values are placeholders of the right shape that
are never sent, a frame the party sends goes out through `link`, one it receives comes from `link`, and
every value both use (opened matrices, validity bits, selections) is computed from its own view.
"""

from __future__ import annotations

import itertools
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np

from protocols.core.driver import CostMeter
from protocols.core.errors import Aborted, BelowThreshold, MalformedMessage
from protocols.core.messages import Kind
from protocols.core.transport import InProcessTransport
from protocols.core.wire import DEALER, SECOND_SERVER, SERVER, Frame, Reader, Writer, decode_frame, encode_frame, party_name
from protocols.two_server import dealer
from protocols.two_server.identities import SeatedShares, check_batch
from protocols.two_server.sealing import associated_data, unseal
from secagg.agreement import X25519Agreement
from secagg.prg import SEED_BYTES
from secagg.randomness import Randomness

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


def parse_ids(r: Reader, limit: int, within=None) -> list[int]:
    """A (1, k) matrix of ascending client ids below `limit` (and, if given, all in `within`)."""
    rows, k = r.u32(), r.u32()
    if rows != 1 or k > limit:
        raise r.fail(f"ids matrix is ({rows}, {k}), not (1, k <= {limit})")
    ids = [int(v) for v in np.frombuffer(r.raw(8 * k), dtype="<u8")]
    r.done()
    if any(v >= limit for v in ids) or any(a >= b for a, b in itertools.pairwise(ids)) or (within is not None and not set(ids) <= set(within)):
        raise r.fail("ids out of range, not strictly ascending or not among those offered")
    return ids


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
    here: int | None = None  # the server this program computes for (None: every party, in process)
    link: object = None  # split: `post(dst, frame)`, `fetch(src) -> frame | None`, and at S0 `deal(kind, args, index) -> (seed, sealed)`
    key: X25519Agreement | None = None  # S1's key, where S1 runs (it opens what was sealed to it)
    dealer_key: bytes | None = None  # the dealer's Ed25519 key, where S1 runs split (it opens only batches signed under it)
    shares: SeatedShares | None = None  # where S1 runs: the clients' keys by position it verifies each sealed share under
    deals: int = 0  # dealer batches so far (their index is bound in what the dealer seals to S1)

    def timer(self, party: int):
        if self.here is not None and party != self.here:
            return nullcontext()  # another party's placeholder work: not this party's cost
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
        data = encode_frame(Frame(kind, self.session, src, dst, payload))
        if self.here is None:
            arriving = self.transport.carry(src, dst, data)
        elif src == self.here:
            self.link.post(dst, data)
            arriving = [data]  # what the receiver parses (its placeholder here)
        elif dst == self.here:
            got = self.link.fetch(src)
            arriving = [] if got is None else [got]
        else:
            arriving = [data]  # between two other parties: a placeholder of the right shape
        for frame_bytes in arriving:
            with self.timer(dst):
                frame = decode_frame(frame_bytes, party=party_name(dst), stage="two-server", copy=False)  # matrices are views of it
                if frame.kind != kind or frame.session != self.session or frame.sender != src or frame.recipient != dst:
                    raise MalformedMessage("unexpected frame", party=party_name(dst), stage="two-server")
                return parse(Reader(frame.payload, party=party_name(dst), stage="two-server"))
        return None

    def deal(self, kind: str, args: tuple[int, ...], rng: Randomness) -> tuple[bytes, list[np.ndarray]]:
        """One dealer batch (`protocols.two_server.dealer`): (the seed as it reached S0, S1's matrices as they reached S1).
        In process the dealer draws from `rng`; split, S0 asks `link.deal` (the dealer's own node) and relays S1's part,
        sealed to S1 and bound to the session and the batch index, which S1 opens.

        Raises:
            BelowThreshold: if a part did not arrive.
            MalformedMessage: if S1's part fails authentication or does not parse (the round aborts).
        """
        shapes, index, message = dealer.parts(kind, args), self.deals, dealer.message(kind)
        self.deals += 1
        if kind in ("gram", "norms"):  # S1's part: A_1 and C_1 (Gram) or c_1 (norms), as the report counts them
            self.dealt["triple_elements"] += sum(int(np.prod(s)) for s in shapes)
        seed_parse = lambda r: (r.raw(SEED_BYTES), r.done())[0]
        parts_parse = lambda r: ([read_matrix(r, s) for s in shapes], r.done())[0]
        if self.here is None:
            with self.timer(DEALER):
                seed, parts = dealer.deal(kind, args, rng)
            got = self.to_both(DEALER, {S0: seed, S1: b"".join(encode_matrix(a) for a in parts)}, {S0: seed_parse, S1: parts_parse},
                               "correlated randomness", {S0: Kind.MATRIX, S1: message})
            return got[S0], got[S1]
        if self.here == S0:
            try:
                seed, sealed = self.link.deal(kind, args, index)
            except ValueError as exc:
                raise Aborted(f"the dealer refused batch {index}: {exc}", party="dealer", stage="correlated randomness") from exc
            if not isinstance(seed, bytes) or len(seed) != SEED_BYTES:
                raise MalformedMessage(f"the dealer's seed is not {SEED_BYTES} bytes", party="server", stage="correlated randomness")
            self.link.post(S1, encode_frame(Frame(message, self.session, DEALER, S1, sealed)))  # relayed: S0 cannot read it
            return seed, [np.zeros(s, dtype=np.uint64) for s in shapes]

        def opened(r: Reader) -> list[np.ndarray]:
            ad = associated_data(self.session, DEALER, message, index)
            try:
                sealed = check_batch(self.dealer_key, ad, self.key.public_bytes(), r.raw(r.remaining()))
            except ValueError as exc:
                raise MalformedMessage(str(exc), party="second server", stage="correlated randomness") from None
            inner = unseal(self.key, sealed, ad, party="second server", stage="correlated randomness")
            return parts_parse(Reader(inner, party="second server", stage="correlated randomness"))

        parts = self.send(DEALER, S1, message, b"", opened)
        if parts is None:
            raise BelowThreshold("the dealer's sealed part did not arrive", party="second server", stage="correlated randomness")
        return bytes(SEED_BYTES), parts

    def to_both(self, src: int, payload: dict[int, bytes], parse: dict[int, object], what: str, kinds: dict[int, Kind]) -> dict[int, object]:
        """`src` (the dealer) sends each server its payload as a frame of its kind; raises BelowThreshold unless both arrive."""
        got = {p: self.send(src, p, kinds[p], payload[p], parse[p]) for p in (S0, S1)}
        if any(v is None for v in got.values()):
            raise BelowThreshold(f"{what} did not arrive", party="server", stage=what)
        return got

    def exchange(self, kind: Kind, mine: dict[int, np.ndarray], shape: tuple[int, int], combine=np.add) -> np.ndarray:
        """Both servers open their shares to each other; returns the opened `combine(share0, share1)`."""
        got0 = self.send(S1, S0, kind, encode_matrix(mine[S1]), lambda r: parse_matrix(r, shape))
        got1 = self.send(S0, S1, kind, encode_matrix(mine[S0]), lambda r: parse_matrix(r, shape))
        if got0 is None or got1 is None:
            raise BelowThreshold("a server's share did not arrive", party="server", stage="open")
        if self.here == S1:
            with self.timer(S1):
                return combine(mine[S1], got1)
        with self.timer(S0):
            return combine(mine[S0], got0)
