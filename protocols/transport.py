"""An in-process transport: delivers frames between parties over authenticated links and counts bytes.

Each client has a link to the server authenticated by HMAC-SHA256 under a per-link key (what TLS
gives a deployment). Counted bytes are frame bytes plus the 32-byte tag. Two hooks, for tests:
`tamper(src, dst, frame) -> list[frame]` acts before sealing, as a compromised endpoint would
(the protocol's parsers must cope); `wire(src, dst, sealed) -> list[sealed]` acts on the wire, as a
network attacker without the link key would (the link rejects what it altered).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

from protocols.errors import MalformedMessage
from protocols.wire import SERVER
from secagg.randomness import Randomness

TAG_BYTES = 32
Hook = Callable[[int, int, bytes], list[bytes]]


class InProcessTransport:
    """Carries frames between clients 0..n-1 and `SERVER`; `bytes_up[i]`/`bytes_down[i]` count client i's traffic."""

    def __init__(self, n: int, rng: Randomness, *, tamper: Hook | None = None, wire: Hook | None = None) -> None:
        self._keys = [rng.bytes(32) for _ in range(n)]
        self._tamper, self._wire = tamper, wire
        self.bytes_up = [0] * n
        self.bytes_down = [0] * n
        self.rejected: list[MalformedMessage] = []

    def carry(self, src: int, dst: int, frame: bytes) -> list[bytes]:
        """Sends `frame` from src to dst; returns the frames that arrive with a valid link tag
        (normally just `frame`). Frames failing authentication are appended to `rejected`."""
        client = dst if src == SERVER else src
        key = self._keys[client]
        out = []
        for body in self._tamper(src, dst, frame) if self._tamper else [frame]:
            sealed = body + hmac.new(key, body, hashlib.sha256).digest()
            if src == SERVER:
                self.bytes_down[client] += len(sealed)
            else:
                self.bytes_up[client] += len(sealed)
            for data in self._wire(src, dst, sealed) if self._wire else [sealed]:
                body, tag = data[:-TAG_BYTES], data[-TAG_BYTES:]
                if len(data) >= TAG_BYTES and hmac.compare_digest(tag, hmac.new(key, body, hashlib.sha256).digest()):
                    out.append(body)
                else:
                    party = "server" if dst == SERVER else f"client {dst}"
                    self.rejected.append(MalformedMessage("link authentication failed", party=party, stage="transport"))
        return out
