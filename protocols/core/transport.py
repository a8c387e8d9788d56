"""An in-process transport: delivers frames between parties over authenticated links and counts bytes.

Every pair of parties that talks has a link authenticated by HMAC-SHA256 under its own key (what
TLS gives a deployment). Counted bytes are frame bytes plus the 32-byte tag: a client's traffic
with any non-client party in `bytes_up`/`bytes_down`, traffic between non-client parties (server,
key holder, second server, dealer) in `bytes_between[(src, dst)]`. Two hooks, for tests:
`tamper(src, dst, frame) -> list[frame]` acts before sealing, as a compromised endpoint would
(the protocol's parsers must cope); `wire(src, dst, sealed) -> list[sealed]` acts on the wire, as a
network attacker without the link key would (the link rejects what it altered).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

from protocols.core.errors import MalformedMessage
from protocols.core.wire import PARTY_NAMES, party_name
from secagg.randomness import Randomness

TAG_BYTES = 32
Hook = Callable[[int, int, bytes], list[bytes]]


class InProcessTransport:
    """Carries frames between clients 0..n-1 and the non-client parties; counts each client's bytes."""

    def __init__(self, n: int, rng: Randomness, *, tamper: Hook | None = None, wire: Hook | None = None) -> None:
        self._keys: dict[tuple[int, int], bytes] = {}
        self._rng = rng
        self._tamper, self._wire = tamper, wire
        self.bytes_up = [0] * n
        self.bytes_down = [0] * n
        self.bytes_between: dict[tuple[int, int], int] = {}
        self.rejected: list[MalformedMessage] = []

    def _key(self, src: int, dst: int) -> bytes:
        link = (min(src, dst), max(src, dst))
        if link not in self._keys:
            self._keys[link] = self._rng.bytes(32)
        return self._keys[link]

    def as_sent(self, src: int, dst: int, frame: bytes) -> list[bytes]:
        """What `src` sends in place of `frame` (the `tamper` hook, a compromised endpoint), without carrying it:
        for a frame that reaches `dst` sealed inside another party's message (a relay)."""
        return self._tamper(src, dst, frame) if self._tamper else [frame]

    def carry(self, src: int, dst: int, frame: bytes) -> list[bytes]:
        """Sends `frame` from src to dst; returns the frames that arrive with a valid link tag
        (normally just `frame`). Frames failing authentication are appended to `rejected`."""
        if src == dst:
            raise ValueError("a party cannot send to itself")
        key = self._key(src, dst)
        out = []
        for body in self.as_sent(src, dst, frame):
            sealed = body + hmac.new(key, body, hashlib.sha256).digest()
            if src not in PARTY_NAMES:
                self.bytes_up[src] += len(sealed)
            elif dst not in PARTY_NAMES:
                self.bytes_down[dst] += len(sealed)
            else:
                self.bytes_between[(src, dst)] = self.bytes_between.get((src, dst), 0) + len(sealed)
            for data in self._wire(src, dst, sealed) if self._wire else [sealed]:
                body, tag = data[:-TAG_BYTES], data[-TAG_BYTES:]
                if len(data) >= TAG_BYTES and hmac.compare_digest(tag, hmac.new(key, body, hashlib.sha256).digest()):
                    out.append(body)
                else:
                    self.rejected.append(MalformedMessage("link authentication failed", party=party_name(dst), stage="transport"))
        return out


def chain(hooks):
    """One `tamper` hook applying `hooks` in order (each to every frame the previous one let through)."""
    def tamper(src: int, dst: int, frame: bytes) -> list[bytes]:
        frames = [frame]
        for hook in hooks:
            frames = [g for f in frames for g in hook(src, dst, f)]
        return frames
    return tamper
