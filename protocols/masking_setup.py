"""Public parameters of one round of pairwise-masking secure aggregation, and the derivations
both sides must agree on (contexts, commitments, mask signs)."""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from secagg.ring import Ring

SELF_MASK_DOMAIN = b"secagg/self-mask"
PAIRWISE_MASK_DOMAIN = b"secagg/pairwise-mask"


@dataclass(frozen=True, slots=True)
class RoundSetup:
    """n clients, graph degree k, share threshold t (among a client's k neighbours), inputs of d
    elements of `ring`, `active` = signatures and a consistency check against an active server."""

    n: int
    k: int
    t: int
    d: int
    ring: Ring
    active: bool
    session: bytes

    def pair_context(self, label: bytes, u: int, v: int) -> bytes:
        """HKDF info binding a pairwise secret to this round and the unordered pair {u, v}."""
        return label + self.session + struct.pack(">II", min(u, v), max(u, v))

    def share_associated_data(self, sender: int, recipient: int) -> bytes:
        return b"secagg/share" + self.session + struct.pack(">II", sender, recipient)

    def advertise_message(self, u: int, c_pk: bytes, s_pk: bytes) -> bytes:
        return b"secagg/advertise" + self.session + struct.pack(">I", u) + c_pk + s_pk

    def consistency_message(self, survivors: list[int]) -> bytes:
        return b"secagg/consistency" + self.session + struct.pack(f">{len(survivors)}I", *survivors)

    def commitment(self, u: int, seed: bytes) -> bytes:
        """SHA-256 commitment to client u's self-mask seed (hiding: the seed is 256 uniform bits)."""
        return hashlib.sha256(b"secagg/self-mask-commitment" + self.session + struct.pack(">I", u) + seed).digest()


def mask_sign(u: int, v: int) -> int:
    """Client u adds +PRG(s_uv) when u < v and -PRG(s_uv) otherwise, so the pair cancels in the sum."""
    return 1 if u < v else -1
