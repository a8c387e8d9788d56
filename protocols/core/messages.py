"""Message kinds shared by every protocol family, and the vector payloads several of them send.

| payload | bytes |
|---|---|
| ring vector | bits (1) d (4) d * ceil(bits/8) elements, little-endian |
| float vector | d (4) d float32 (or float64) little-endian values, all finite |
"""

from __future__ import annotations

import enum

import numpy as np

from protocols.core.wire import Reader, Writer
from secagg.ring import Ring


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
    SEALED_SHARE = 18  # client -> first server: its seed frame, and its second-server frame sealed to the second server
    NORM_TRIPLE = 19  # dealer -> second server: its share of a norm triple (A_1, c_1), sealed under this kind of its own


def encode_vector(ring: Ring, x: np.ndarray) -> bytes:
    return vector_writer(ring, x).getvalue()


def vector_writer(ring: Ring, x: np.ndarray) -> Writer:
    """`encode_vector`'s payload before its copy: a frame payload that `encode_frame` copies once (x unchanged till then)."""
    return Writer().u8(ring.bits).u32(len(x)).view(ring.to_buffer(x))


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
