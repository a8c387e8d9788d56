"""A PRG that expands a 32-byte seed into a uniform vector of Z_{2^b}.

key (16 B) || nonce (16 B) = HKDF-SHA256(seed, salt=None, info=domain); the vector is the
AES-128-CTR keystream under (key, nonce), written with `update_into` straight into the
numpy buffer (no intermediate bytes object), read little-endian and reduced mod 2**b.
For b < 8 * itemsize the reduction keeps the low b bits of a uniform word, which is uniform.
Distinct `domain` strings give independent streams from one seed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from secagg.ring import Ring

SEED_BYTES = 32
_BLOCK = 16
_BLOCK_BYTES = 1 << 18  # 256 KiB: a block of the vector and one of keystream stay in L2 across the streams (32 KiB spent 1.5x the keystream in call overhead)
_ZEROS = memoryview(bytes(_BLOCK_BYTES))  # the CTR source: keystream XOR 0


def derive(seed: bytes, domain: bytes, length: int = 32) -> bytes:
    """HKDF-SHA256(seed, salt=None, info=domain) truncated to `length` bytes."""
    if len(seed) < 16:
        raise ValueError(f"seed must be at least 16 bytes, found {len(seed)}")
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=domain).derive(seed)


class AesCtrPrg:
    """Expands seeds into ring vectors. Reuses one scratch buffer, so an instance is not thread-safe.

    Example:
        >>> prg = AesCtrPrg(Ring(32))
        >>> mask = prg.expand(seed, 1000, b"secagg/self-mask")   # uint32[1000]
        >>> prg.add_into(acc, seed, b"secagg/self-mask", sign=-1)  # acc -= mask, mod 2**32
    """

    def __init__(self, ring: Ring) -> None:
        self.ring = ring
        self._scratch = np.empty(0, dtype=np.uint8)

    def _keystream(self, seed: bytes, d: int, domain: bytes) -> np.ndarray:
        """The raw keystream of d elements, as a view of the scratch buffer (valid until the next call)."""
        if len(seed) != SEED_BYTES:
            raise ValueError(f"seed must be {SEED_BYTES} bytes, found {len(seed)}")
        if d < 0:
            raise ValueError(f"d must be non-negative, found {d}")
        nbytes = d * self.ring.dtype.itemsize
        if self._scratch.size < nbytes + _BLOCK:
            self._scratch = np.empty(nbytes + _BLOCK, dtype=np.uint8)
        buf = self._scratch[: nbytes + _BLOCK]
        buf[:nbytes] = 0
        material = derive(seed, domain)
        encryptor = Cipher(algorithms.AES(material[:16]), modes.CTR(material[16:])).encryptor()
        encryptor.update_into(memoryview(buf)[:nbytes], buf)
        return buf[:nbytes].view(self.ring.dtype)

    def expand(self, seed: bytes, d: int, domain: bytes) -> np.ndarray:
        """Returns a fresh uniform vector of Z_{2^b} of length d (a copy the caller owns)."""
        return self.ring.reduce(self._keystream(seed, d, domain))  # reduce returns a new array (a copy at full width)

    def add_into(self, acc: np.ndarray, seed: bytes, domain: bytes, sign: int = 1) -> None:
        """acc += sign * PRG(seed) mod 2**b, in place, with no allocation after the first call."""
        self.add_streams(acc, [(seed, domain, sign)])

    def add_streams(self, acc: np.ndarray, streams: Sequence[tuple[bytes, bytes, int]], *, start: np.ndarray | None = None) -> None:
        """acc += sum of sign * PRG(seed, domain) over the (seed, domain, sign) `streams`, mod 2**b, in place: the
        same vector as one `add_into` a stream (`start`: acc = start + ..., acc's contents ignored, start unchanged:
        a copy folded into the walk). The vector is walked in blocks of `_BLOCK_BYTES`; each block takes every
        stream's next keystream block while it is in cache (a mask costs its AES-CTR keystream and one add, not a
        memset, a keystream pass and an add over the whole vector), keystream written from a zero source."""
        if start is not None and start.shape != acc.shape:
            raise ValueError(f"start must have acc's shape {acc.shape}, found {start.shape}")
        signs = [sign for _, _, sign in streams]
        if any(sign not in (1, -1) for sign in signs):
            raise ValueError(f"sign must be +1 or -1, found {next(s for s in signs if s not in (1, -1))}")
        for seed, _, _ in streams:
            if len(seed) != SEED_BYTES:
                raise ValueError(f"seed must be {SEED_BYTES} bytes, found {len(seed)}")
        keys = [derive(seed, domain) for seed, domain, _ in streams]
        ciphers = [Cipher(algorithms.AES(k[:16]), modes.CTR(k[16:])).encryptor() for k in keys]
        size = self.ring.dtype.itemsize
        if self._scratch.size < _BLOCK_BYTES + _BLOCK:
            self._scratch = np.empty(_BLOCK_BYTES + _BLOCK, dtype=np.uint8)
        for at in range(0, acc.shape[0], _BLOCK_BYTES // size):
            part = acc[at : at + _BLOCK_BYTES // size]
            if start is not None:
                part[...] = start[at : at + _BLOCK_BYTES // size]
            nbytes = part.shape[0] * size
            stream = self._scratch[:nbytes].view(self.ring.dtype)
            for cipher, sign in zip(ciphers, signs):
                cipher.update_into(_ZEROS[:nbytes], self._scratch)
                (np.add if sign == 1 else np.subtract)(part, stream, out=part)
        self.ring.reduce(acc, out=acc)
