"""Payloads of the homomorphic-encryption protocols: signed client ciphertexts, the key holder's
decryption requests with their evidence, and released plaintexts.

    CIPHERTEXT       blob(ciphertext) | signature(64)
    DECRYPT_REQUEST  u8 target | u32 m | m x (u32 client, sha256(ciphertext), signature) |
                     blob(what to decrypt) | u8 has_inputs | [m x blob(ciphertext)] | blob(extra)
    PLAINTEXT        u32 count | count x float64 (little-endian; `protocols.core.messages.encode_floats`)

A client signs ("he-input" | session | u32 client position | u32 n | sha256(ciphertext)) with its
Ed25519 key, n the client count the aggregator announced to it (what its headroom check divided by), so
the key holder can tell a round's inputs from anything else the aggregator might send, and verifies
them with its own round size (review 17: an aggregator announcing fewer clients made honest sums wrap).
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass

import numpy as np

from protocols.core.messages import encode_floats, parse_floats
from protocols.core.wire import Reader, Writer
from secagg.signatures import SIGNATURE_BYTES

DIGEST_BYTES = 32


class Target(enum.IntEnum):
    """What a decryption request asks for."""

    SUM = 0  # the sum of the listed inputs
    MODEL = 1  # the hidden-state model after adding the sum of the listed inputs
    SCALARS = 2  # encrypted scalars computed from the listed inputs (distances for a robust rule)
    SELECTED_SUM = 3  # the sum of the inputs a robust rule selected, after SCALARS


def digest(ciphertext: bytes) -> bytes:
    return hashlib.sha256(ciphertext).digest()


def signed_message(session: bytes, client: int, n: int, ciphertext_digest: bytes) -> bytes:
    """What client `client` of a round announced as n clients signs for the ciphertext whose SHA-256 is `ciphertext_digest`."""
    return b"he-input" + session + client.to_bytes(4, "big") + n.to_bytes(4, "big") + ciphertext_digest


def encode_ciphertext(ciphertext: bytes, signature: bytes) -> bytes:
    return Writer().blob(ciphertext).raw(signature).getvalue()


def parse_ciphertext(r: Reader, max_bytes: int) -> tuple[bytes, bytes]:
    ct = r.blob(max_bytes)
    sig = r.raw(SIGNATURE_BYTES)
    r.done()
    return ct, sig


@dataclass(frozen=True)
class DecryptRequest:
    target: Target
    manifest: dict[int, tuple[bytes, bytes]]  # client -> (sha256 of its ciphertext, its signature)
    payload: bytes  # the ciphertext to decrypt
    inputs: dict[int, bytes] | None = None  # the clients' ciphertexts, for a key holder that recomputes
    extra: bytes = b""  # target-specific data (e.g. the pairs of SCALARS, the selection of SELECTED_SUM)

    def encode(self) -> bytes:
        w = Writer().u8(self.target).u32(len(self.manifest))
        for u in sorted(self.manifest):
            digest, sig = self.manifest[u]
            w.u32(u).raw(digest).raw(sig)
        w.blob(self.payload).u8(self.inputs is not None)
        if self.inputs is not None:
            for u in sorted(self.manifest):
                w.blob(self.inputs[u])
        return w.blob(self.extra).getvalue()

    @classmethod
    def parse(cls, r: Reader, *, n: int, max_bytes: int) -> DecryptRequest:
        target = r.u8()
        if target not in Target.__members__.values():
            raise r.fail("unknown decryption target")
        m = r.count(4 + DIGEST_BYTES + SIGNATURE_BYTES, n)
        manifest, last = {}, -1
        for _ in range(m):
            u = r.u32()
            if u >= n or u <= last:
                raise r.fail("manifest ids out of range or not strictly ascending")
            manifest[u] = (r.raw(DIGEST_BYTES), r.raw(SIGNATURE_BYTES))
            last = u
        payload = r.blob(max_bytes)
        has_inputs = r.u8()
        if has_inputs > 1:
            raise r.fail("bad inputs flag")
        inputs = {u: r.blob(max_bytes) for u in manifest} if has_inputs else None
        extra = r.blob(max_bytes)
        r.done()
        return cls(Target(target), manifest, payload, inputs, extra)


def encode_plaintext(values: np.ndarray) -> bytes:
    return encode_floats(values, "<f8")


def parse_plaintext(r: Reader, count: int) -> np.ndarray:
    return parse_floats(r, count, "<f8")
