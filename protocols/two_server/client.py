"""A client's half of a two-server round, and S0's collecting role.

The client answers S0's request with one bundle (kind SEALED_SHARE):

    blob(seed frame: SHARE_SEED to S0, the 32-byte seed its S0 share expands from)
    blob(sealed share frame: SHARE_VECTOR to S1, its explicit share, digits and slack, sealed to S1)
    blob(signature: 64 bytes, its long-term key's over the sealed frame, `identities.share_message`)

(the first two empty if not sent, the signature then too). S0 keeps the seed and relays the sealed frame and its
signature to S1 (`protocols.two_server.sealing`): it never sees S1's share in the clear, and S1 opens only a share
the client at that roster position signed. A pinned client (`RoundKeyPin`: on Flower, always) seals only to a
round key S1 signed for its run and round; any other key S0 names, it refuses (`Refused`, raised from `handle`,
and `aborted`): it sends nothing, and the round goes on without it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from protocols.core.errors import MalformedMessage, Refused, ReplayedMessage
from protocols.core.messages import Kind
from protocols.core.pki import ClientIdentity, roster_digest
from protocols.core.schedule import Stage
from protocols.core.wire import SECOND_SERVER, SERVER, Frame, Reader, Writer, decode_frame, encode_frame
from protocols.two_server.identities import SIGNATURE_BYTES, RoundKeyPin, share_message
from protocols.two_server.sealing import associated_data, seal
from secagg.prg import SEED_BYTES
from secagg.randomness import Randomness

STAGE = "share"
MAX_SEALED = 1 << 31  # bytes


def bundle(seed_frame: bytes | None, sealed: bytes | None, signature: bytes | None) -> bytes:
    return Writer().blob(seed_frame or b"").blob(sealed or b"").blob(signature or b"").getvalue()


class ShareClient:
    """Client at position `cid` (long-term `identity`, seated by `roster`): on S0's request, splits its input with
    `make() -> (seed, S1 payload)` (timed as the client's work) and answers with the seed frame and the S1 frame
    sealed to `second_server` (S1's X25519 public key), if `pin` is None or S1's `signature` of that key (as S0
    relayed it) verifies under it, signed with its identity for the pin's run and round (unpinned: run 0 and
    `stated_round`, S0's word)."""

    def __init__(self, cid: int, session: bytes, second_server: bytes, make: Callable[[], tuple[bytes, bytes]], rng: Randomness,
                 pin: RoundKeyPin | None = None, signature: object = None, *, identity: ClientIdentity, roster: list[int],
                 stated_round: int = 0) -> None:
        self.cid, self._session, self._second, self._make, self._rng = cid, session, second_server, make, rng
        self._pin, self._signature, self._identity, self._roster = pin, signature, identity, roster_digest(roster)
        self._run, self._round = (pin.run, pin.round_number) if pin is not None else (0, stated_round)
        self.aborted = False

    def _check(self, data: bytes) -> None:
        frame = decode_frame(data, party=f"client {self.cid}", stage=STAGE)
        if frame.kind != Kind.REQUEST or frame.session != self._session or frame.recipient != self.cid:
            raise MalformedMessage("unexpected frame", party=f"client {self.cid}", stage=STAGE)

    def frames(self, request: bytes) -> tuple[bytes, bytes]:
        """(seed frame to S0, share frame to S1), in the clear: what this client means to send."""
        self._check(request)
        seed, payload = self._make()
        return (encode_frame(Frame(Kind.SHARE_SEED, self._session, self.cid, SERVER, seed)),
                encode_frame(Frame(Kind.SHARE_VECTOR, self._session, self.cid, SECOND_SERVER, payload)))

    def seal(self, share_frame: bytes) -> tuple[bytes, bytes]:
        """(`share_frame` sealed to S1's key, this client's signature of it), once the pin (if any) accepts that key.

        Raises:
            Refused: (and sets `aborted`) if the key is not one S1 signed for the pinned run and round.
        """
        if self._pin is not None:
            try:
                self._pin.check(self._second, self._signature, party=f"client {self.cid}")
            except Refused:
                self.aborted = True
                raise
        ad = associated_data(self._session, self.cid, Kind.SHARE_VECTOR)
        sealed = seal(self._second, share_frame, ad, self._rng)
        message = share_message(self._run, self._round, ad, self._identity.cid, self._roster, self._second, sealed)
        return sealed, self._identity.signer.sign(message)

    def handle(self, data: bytes) -> bytes:
        return self.handle_relaying(data, lambda dst, frame: [frame])

    def handle_relaying(self, data: bytes, as_sent: Callable[[int, bytes], list[bytes]]) -> bytes:
        """`handle`, with `as_sent(dst, frame)` what this client actually sends in place of each frame (in process:
        the transport's tamper hook, before sealing; the first frame counts, none: not sent)."""
        seed_frame, share_frame = self.frames(data)
        seeds, shares = as_sent(SERVER, seed_frame), as_sent(SECOND_SERVER, share_frame)
        sealed, signature = self.seal(shares[0]) if shares else (None, None)
        return encode_frame(Frame(Kind.SEALED_SHARE, self._session, self.cid, SERVER, bundle(seeds[0] if seeds else None, sealed, signature)))


class ShareCollector:
    """S0's role in the share stage: requests every client's bundle, keeps the seeds (`seeds`), the sealed
    S1 frames and their signatures it will relay (`sealed`, `signatures`; S1 checks them). A seed frame that does
    not parse excludes its sender (`MalformedMessage` naming the client); a second bundle from a client is refused
    (`ReplayedMessage`)."""

    def __init__(self, n: int, session: bytes) -> None:
        self._n, self._session = n, session
        self.seeds: dict[int, bytes] = {}
        self.sealed: dict[int, bytes | memoryview] = {}
        self.signatures: dict[int, bytes] = {}
        self._heard: set[int] = set()

    def requests(self) -> dict[int, bytes]:
        return {u: encode_frame(Frame(Kind.REQUEST, self._session, SERVER, u, bytes([Stage.MASKED_INPUT]))) for u in range(self._n)}

    def receive(self, data: bytes, link: int) -> None:
        party = f"client {link}"
        if not isinstance(data, bytes):  # a view into a buffer the transport may refill: the sealed share keeps a view of it
            data = bytes(data)
        frame = decode_frame(data, party=party, stage=STAGE, copy=False)
        if frame.kind != Kind.SEALED_SHARE or frame.session != self._session or frame.sender != link or frame.recipient != SERVER:
            raise MalformedMessage("unexpected frame", party=party, stage=STAGE)
        if link in self._heard:
            raise ReplayedMessage(f"second share bundle from client {link}", party=party, stage=STAGE)
        self._heard.add(link)
        r = Reader(frame.payload, party=party, stage=STAGE)
        seed_frame, sealed = r.blob(MAX_SEALED), r.blob(MAX_SEALED, copy=False)  # relayed as it came: a view of the bundle
        signature = r.blob(SIGNATURE_BYTES)
        r.done()
        seed = self.parse_seed(seed_frame, link) if seed_frame else None  # every check before anything is recorded (review 9)
        if sealed:
            self.sealed[link], self.signatures[link] = sealed, signature
        if seed is not None:
            self.seeds[link] = seed

    def parse_seed(self, data: bytes, link: int) -> bytes:
        party = f"client {link}"
        f = decode_frame(data, party=party, stage=STAGE)
        if f.kind != Kind.SHARE_SEED or f.session != self._session or f.sender != link or f.recipient != SERVER:
            raise MalformedMessage("unexpected seed frame", party=party, stage=STAGE)
        r = Reader(f.payload, party=party, stage=STAGE)
        seed = r.raw(SEED_BYTES)
        r.done()
        return seed

    def close(self) -> None:
        pass


def placeholder_share(d: int, digits: tuple[int, int] | None, slack: tuple[int, int] | None) -> tuple:
    """What S0's program holds in place of S1's share of a client (never sent, never opened)."""
    return (np.zeros(d, dtype=np.uint64), *(np.zeros(s, dtype=np.uint64) if s is not None else None for s in (digits, slack)))
