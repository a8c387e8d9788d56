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

from protocols.wire import Reader, Writer
from secagg import aead
from secagg.ring import Ring
from secagg.shamir import bytes_to_field
from secagg.signatures import SIGNATURE_BYTES

KEY_BYTES = 32
SECRET_BYTES = 32
SECRET_ELEMENTS = len(bytes_to_field(bytes(SECRET_BYTES)))  # field elements a 32-byte secret takes
SHARE_BYTES = 8 * SECRET_ELEMENTS
SHARE_PLAINTEXT_BYTES = 8 + 2 * SHARE_BYTES  # sender, recipient, key share, seed share
SHARE_CIPHERTEXT_BYTES = SHARE_PLAINTEXT_BYTES + aead.OVERHEAD
COMMITMENT_BYTES = 32


class Kind(enum.IntEnum):
    REQUEST = 1
    ADVERTISE = 2
    KEYS = 3
    SHARES = 4
    RELAYED_SHARES = 5
    VECTOR = 6
    SURVIVORS = 7
    SIGNATURE = 8
    UNMASK_REQUEST = 9
    UNMASK_SHARES = 10
    FLOATS = 11  # a float32 vector in the clear (plaintext robust aggregation)
    CIPHERTEXT = 12  # a client's signed HE ciphertext
    DECRYPT_REQUEST = 13  # aggregator -> key holder: what to decrypt, with its evidence
    PLAINTEXT = 14  # key holder -> aggregator (or clients): released values
    SHARE_SEED = 15  # client -> first server: the seed its additive share expands from
    SHARE_VECTOR = 16  # client -> second server: its explicit additive share
    MATRIX = 17  # between servers, or dealer -> server: a uint64 matrix (ids, opened values, triple shares)


class Secret(enum.IntEnum):
    """Which of a peer's two secrets an unmasking share belongs to."""

    SELF_MASK_SEED = 0
    MASK_KEY = 1


def key_entry_bytes(active: bool) -> int:
    return 2 * KEY_BYTES + (SIGNATURE_BYTES if active else 0)


def encode_vector(ring: Ring, x: np.ndarray) -> bytes:
    return Writer().u8(ring.bits).u32(len(x)).raw(ring.to_bytes(x)).getvalue()


def parse_vector(r: Reader, ring: Ring, d: int) -> np.ndarray:
    """A vector of exactly `d` elements of `ring`."""
    if r.u8() != ring.bits or r.u32() != d:
        raise r.fail(f"vector is not {d} elements of Z_2^{ring.bits}")
    try:
        x = ring.from_bytes(r.raw(d * ring.element_bytes), d)
    except ValueError as exc:
        raise r.fail(str(exc)) from exc
    r.done()
    return x


def encode_floats(x: np.ndarray, dtype: str = "<f4") -> bytes:
    """u32 count | the values, little-endian float32 (or float64 with dtype "<f8")."""
    return Writer().u32(len(x)).raw(np.asarray(x, dtype=dtype).tobytes()).getvalue()


def parse_floats(r: Reader, d: int, dtype: str = "<f4") -> np.ndarray:
    """Exactly `d` finite values written by `encode_floats` with the same dtype, in native byte order."""
    if r.u32() != d:
        raise r.fail(f"vector is not {d} floats")
    kind = np.dtype(dtype)
    x = np.frombuffer(r.raw(kind.itemsize * d), dtype=kind).astype(kind.newbyteorder("="))
    r.done()
    if not np.all(np.isfinite(x)):
        raise r.fail("vector contains NaN or infinity")
    return x


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
