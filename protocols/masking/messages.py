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
| SIGNATURE | client -> server | Ed25519 signature of the survivor list (64) |
| UNMASK_REQUEST | server -> client | survivor ids, entries: id -> signature (active mode) |
| UNMASK_SHARES | client -> server | entries: peer -> kind (1) share (40) |
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


def key_entry_bytes(active: bool) -> int:
    return 2 * KEY_BYTES + (SIGNATURE_BYTES if active else 0)


def encode_unmask_shares(shares: dict[int, tuple[Secret, np.ndarray]]) -> bytes:
    return Writer().entries({v: bytes([kind]) + share.astype(">u8").tobytes() for v, (kind, share) in shares.items()}).getvalue()


def parse_unmask_shares(r: Reader, n: int) -> dict[int, tuple[Secret, np.ndarray]]:
    out = {}
    for v, raw in r.entries(1 + SHARE_BYTES, n, n).items():
        if raw[0] not in (Secret.SELF_MASK_SEED, Secret.MASK_KEY):
            raise r.fail("unknown secret kind")
        out[v] = (Secret(raw[0]), np.frombuffer(raw[1:], dtype=">u8").astype(np.uint64))
    r.done()
    return out
