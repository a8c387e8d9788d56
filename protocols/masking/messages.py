"""Payload formats of pairwise-masking secure aggregation (SecAgg / SecAgg+), one encoder and one
defensive parser each. Sizes are in bytes; n bounds every count and id.

| kind | direction | payload |
|---|---|---|
| REQUEST | server -> client | stage (1) |
| ADVERTISE | client -> server | c_pk (32) s_pk (32) [Ed25519 signature (64), active mode] |
| KEYS | server -> client | entries: id -> c_pk s_pk [signature] for live neighbours |
| SHARES | client -> server | commitment to the self-mask seed (32), entries: recipient -> AES-GCM ciphertext (116) |
| RELAYED_SHARES | server -> client | entries: sender -> ciphertext (116) |
| VECTOR | client -> server | bits (1) d (4) vector (d * ceil(bits/8)) |
| SURVIVORS | server -> client | ids of clients whose masked input arrived (active mode) |
| SIGNATURE | client -> server | Ed25519 signature of the survivor list and the signer's c_pk s_pk of this round (64) |
| UNMASK_REQUEST | server -> client | survivor ids, entries: id -> signature (active mode) |
| UNMASK_SHARES | client -> server | entries: peer -> kind (1) share (40); kind UNREADABLE (share all zero): the peer's share to this client failed to authenticate |
| FLOATS | client -> server | d (4) float32 little-endian (4 d), finite |
"""

from __future__ import annotations

import enum

import numpy as np

from protocols.core.wire import Reader, Writer
from secagg import aead
from secagg.shamir import bytes_to_field
from secagg.signatures import SIGNATURE_BYTES

KEY_BYTES = 32
SECRET_BYTES = 32
SECRET_ELEMENTS = len(bytes_to_field(bytes(SECRET_BYTES)))  # field elements a 32-byte secret takes
SHARE_BYTES = 8 * SECRET_ELEMENTS
SHARE_PLAINTEXT_BYTES = 8 + 2 * SHARE_BYTES  # sender, recipient, key share, seed share
SHARE_CIPHERTEXT_BYTES = SHARE_PLAINTEXT_BYTES + aead.OVERHEAD
COMMITMENT_BYTES = 32


class Secret(enum.IntEnum):
    """Which of a peer's two secrets an unmasking share belongs to."""

    SELF_MASK_SEED = 0
    MASK_KEY = 1


UNREADABLE = 2  # kind byte of an unmasking entry that holds no share: the peer's encrypted share failed to authenticate


def key_entry_bytes(active: bool) -> int:
    return 2 * KEY_BYTES + (SIGNATURE_BYTES if active else 0)


def encode_unmask_shares(shares: dict[int, tuple[Secret, np.ndarray]], unreadable: frozenset[int] = frozenset()) -> bytes:
    """One entry a peer: the share revealed of it, or for a peer in `unreadable` (disjoint from `shares`) the
    report that its share failed to authenticate (kind UNREADABLE, 40 zero bytes)."""
    entries = {v: bytes([kind]) + share.astype(">u8").tobytes() for v, (kind, share) in shares.items()}
    entries.update({v: bytes([UNREADABLE]) + bytes(SHARE_BYTES) for v in unreadable})
    return Writer().entries(entries).getvalue()


def parse_unmask_reply(r: Reader, n: int) -> tuple[dict[int, tuple[Secret, np.ndarray]], set[int]]:
    """(peer -> (kind, share), the peers reported UNREADABLE); the whole payload."""
    out, unreadable = {}, set()
    for v, raw in r.entries(1 + SHARE_BYTES, n, n).items():
        if raw[0] == UNREADABLE and not any(raw[1:]):
            unreadable.add(v)
            continue
        if raw[0] not in (Secret.SELF_MASK_SEED, Secret.MASK_KEY):
            raise r.fail("unknown secret kind, or an UNREADABLE report that carries bytes")
        out[v] = (Secret(raw[0]), np.frombuffer(raw[1:], dtype=">u8").astype(np.uint64))
    r.done()
    return out, unreadable


def parse_unmask_shares(r: Reader, n: int) -> dict[int, tuple[Secret, np.ndarray]]:
    """The shares of an UNMASK_SHARES payload (UNREADABLE reports left out: `parse_unmask_reply`)."""
    return parse_unmask_reply(r, n)[0]
