"""Sources of random bytes: the OS CSPRNG for secrets, a seeded AES-CTR stream for simulations.

Every randomized function of this toolkit takes a `Randomness`. Production callers pass
`SystemRandomness()` (`os.urandom`); tests and simulations pass `SeededRandomness(seed)` so that a
run is reproducible. A seeded source is deterministic and must never protect real data.
"""

from __future__ import annotations

import abc
import hashlib
import os

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


class Randomness(abc.ABC):
    """A source of uniformly random bytes."""

    @abc.abstractmethod
    def bytes(self, n: int) -> bytes:
        """Returns `n` uniformly random bytes."""

    def uint64(self, size: int) -> np.ndarray:
        """Returns `size` uniform 64-bit words."""
        return np.frombuffer(self.bytes(8 * size), dtype="<u8").copy()

    def below(self, bound: int) -> int:
        """Returns an integer uniform in [0, bound) by rejection sampling (bound >= 1)."""
        if bound < 1:
            raise ValueError(f"bound must be >= 1, found {bound}")
        nbytes = (bound.bit_length() + 7) // 8 + 1
        limit = (256**nbytes // bound) * bound
        while True:
            value = int.from_bytes(self.bytes(nbytes), "little")
            if value < limit:
                return value % bound

    def permutation(self, n: int) -> np.ndarray:
        """Returns a uniform permutation of range(n) (Fisher-Yates)."""
        perm = np.arange(n)
        for i in range(n - 1, 0, -1):
            j = self.below(i + 1)
            perm[i], perm[j] = perm[j], perm[i]
        return perm

    def fork(self, label: str) -> "Randomness":
        """Returns an independent source for one party or purpose, named by `label`."""
        return SeededRandomness(self.bytes(32) + label.encode())


class SystemRandomness(Randomness):
    """The operating system's CSPRNG (`os.urandom`). Use for anything that protects real data."""

    def bytes(self, n: int) -> bytes:
        return os.urandom(n)

    def fork(self, label: str) -> "Randomness":
        return self


class SeededRandomness(Randomness):
    """A reproducible stream: AES-128-CTR keystream under SHA-256(seed). For simulations and tests only."""

    def __init__(self, seed: int | bytes) -> None:
        if isinstance(seed, int):
            if seed < 0:
                raise ValueError(f"seed must be non-negative, found {seed}")
            seed = seed.to_bytes((seed.bit_length() + 8) // 8, "little")
        digest = hashlib.sha256(b"secagg/seeded-randomness" + seed).digest()
        self._stream = Cipher(algorithms.AES(digest[:16]), modes.CTR(digest[16:])).encryptor()

    def bytes(self, n: int) -> bytes:
        return self._stream.update(bytes(n))
