"""Equality of an additively shared vector with zero, by comparing hashes: z = z0 + z1 = 0 (mod 2^64)
iff z0 = -z1, so party 0 sends SHA-256(context || z0) and party 1 SHA-256(context || -z1).

Equal digests for z != 0 would be a SHA-256 collision (work ~2^128); for z = 0 each party already knows
the other's digest, so an honest input reveals one bit (valid) and nothing else.
Low level: the protocol is `protocols.two_server`.
"""

from __future__ import annotations

import hashlib

import numpy as np

DIGEST_BYTES = 32


def zero_digest(party: int, share: np.ndarray, context: bytes) -> bytes:
    """Party `party`'s digest of its share of z: equal to the other party's iff z = 0 (see the module docstring)."""
    s = np.asarray(share, dtype=np.uint64)
    s = s if party == 0 else np.uint64(0) - s
    return hashlib.sha256(context + np.ascontiguousarray(s, dtype="<u8").tobytes()).digest()
