"""Equality of an additively shared vector with zero, by comparing hashes: z = z0 + z1 = 0 (mod 2^64)
iff z0 = -z1, so party 0 sends SHA-256(context || z0) and party 1 SHA-256(context || -z1).

Equal digests for z != 0 would be a SHA-256 collision (work ~2^128). For z = 0 each party already knows
the other's digest. For z != 0 a party holding z_p and the other's digest can test candidates for z offline:
if z takes few values (a residual 2^L q with small q), it finds z. Blinding closes that, up to the 2-adic
valuation: with a dealer's triple (a, r, c = a r), r a secret uniform odd unit per coordinate (so r z = 0 iff
z = 0), the parties open e = z - a (uniform) and compare digests of w = r z, [w]_p = e [r]_p + [c]_p.
For z_j = 2^k u (u odd), w_j = 2^k (r_j u mod 2^(64-k)) is uniform over the 2^(63-k) values 2^k * odd,
whatever u is: the digests reveal at most k_j = v2(z_j) per coordinate (by a search of 2^(63-k_j) hashes),
nothing else about z.
Low level: the protocol is `protocols.two_server`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from secagg.beaver import OneShot, expand_share
from secagg.randomness import Randomness

DIGEST_BYTES = 32


def zero_digest(party: int, share: np.ndarray, context: bytes) -> bytes:
    """Party `party`'s digest of its share of z: equal to the other party's iff z = 0 (see the module docstring)."""
    s = np.asarray(share, dtype=np.uint64)
    s = s if party == 0 else np.uint64(0) - s
    digest = hashlib.sha256(context)
    digest.update(np.ascontiguousarray(s, dtype="<u8").data)  # the little-endian bytes, hashed without a copy
    return digest.digest()


@dataclass
class Blinding(OneShot):
    """One party's share of blinding triples of some shape: a (uniform), r (a uniform odd unit), c = a r."""

    REUSE = "a blinding triple must blind one value only: reuse reveals the difference of the values"

    a: np.ndarray
    r: np.ndarray
    c: np.ndarray


def blinding_from_seed(seed: bytes, shape: tuple[int, ...]) -> Blinding:
    """Party 0's share of dealt blinding triples, from the dealer's seed."""
    return Blinding(*(expand_share(seed, shape, domain) for domain in (b"blind a", b"blind r", b"blind c")))


def deal_blinding(shape: tuple[int, ...], rng: Randomness, seed: bytes) -> tuple[Blinding, Blinding]:
    """The dealer's blinding triples: party 0's share from `seed` (send it the seed), party 1's explicitly."""
    size = int(np.prod(shape))
    a = rng.uint64(size).reshape(shape)
    r = rng.uint64(size).reshape(shape) | np.uint64(1)  # uniform over the odd residues: the units of Z_2^64
    t0 = blinding_from_seed(seed, shape)
    return t0, Blinding(a - t0.a, r - t0.r, a * r - t0.c)


def blinded_share(party: int, e: np.ndarray, blinding: Blinding) -> np.ndarray:
    """Party `party`'s share of r z, given the opened e = z - a: e [r]_p + [c]_p (sums to e r + a r = z r)."""
    t = blinding.use()
    return e * t.r + t.c
