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
    elements of `ring`, `active` = signatures and a consistency check against an active server.

    `graph_seed` keys the SecAgg+ graph (see `protocols.masking.graph.HararyGraph`). An honest-but-curious
    server draws it; against an active server it is None and every party derives it from the signed
    advertisements instead (`graph_seed_from`), so that the server cannot pick it alone.

    `roster` binds the round's roster (position -> client id, whose directory keys verify the positions'
    signatures) into every signed message: a server that tells clients different rosters gets signatures
    that verify only among clients holding the same roster, so it cannot seat two honest clients at one position.
    """

    n: int
    k: int
    t: int
    d: int
    ring: Ring
    active: bool
    session: bytes
    graph_seed: bytes | None = None
    roster: bytes = b""  # active mode with long-term identities: `protocols.core.pki.roster_digest`, signed into every signature

    @property
    def derives_graph(self) -> bool:
        """Whether the graph comes from the signed advertisements (active SecAgg+; SecAgg's graph is complete)."""
        return self.active and self.k < self.n - 1

    def graph_seed_from(self, advertisements: dict[int, bytes]) -> bytes:
        """SHA-256 over the session and every signed advertisement (c_pk | s_pk | signature) of the
        clients that advertised, in id order. The server cannot change an honest entry (signed) and
        fixes the set only once every advertisement is in; what it keeps is the choice of who is
        included and, with colluding clients, of their keys: each such change re-draws the graph
        (one hash), it never sets it."""
        h = hashlib.sha256(b"secagg/graph-seed" + self.session + struct.pack(">I", len(advertisements)))
        for u in sorted(advertisements):
            h.update(struct.pack(">I", u) + advertisements[u])
        return h.digest()

    def pair_context(self, label: bytes, u: int, v: int) -> bytes:
        """HKDF info binding a pairwise secret to this round and the unordered pair {u, v}."""
        return label + self.session + struct.pack(">II", min(u, v), max(u, v))

    def share_associated_data(self, sender: int, recipient: int) -> bytes:
        return b"secagg/share" + self.session + struct.pack(">II", sender, recipient)

    def advertise_message(self, u: int, c_pk: bytes, s_pk: bytes) -> bytes:
        return b"secagg/advertise" + self.session + self.roster + struct.pack(">I", u) + c_pk + s_pk

    def consistency_message(self, survivors: list[int], keys: bytes) -> bytes:
        """What a client signs at the consistency check: the survivor list and `keys`, its own c_pk | s_pk of this round
        (fresh each round), so that a signature made in an earlier round under the same session and roster (the server
        chooses both) verifies against no key advertised in this one (review 15)."""
        return b"secagg/consistency" + self.session + self.roster + keys + struct.pack(f">{len(survivors)}I", *survivors)

    def commitment(self, u: int, seed: bytes) -> bytes:
        """SHA-256 commitment to client u's self-mask seed (hiding: the seed is 256 uniform bits)."""
        return hashlib.sha256(b"secagg/self-mask-commitment" + self.session + struct.pack(">I", u) + seed).digest()


def mask_sign(u: int, v: int) -> int:
    """Client u adds +PRG(s_uv) when u < v and -PRG(s_uv) otherwise, so the pair cancels in the sum."""
    return 1 if u < v else -1
