"""Bit-sliced XOR sharing of the offset-binary digits of a vector of Z_{2^64}.

Offset binary: a signed x in [-2^(b-1), 2^(b-1)) is u = x + 2^(b-1) in [0, 2^b), u = sum_k 2^k u_k,
and x < y iff u < v as unsigned b-bit numbers. Plane k packs digit u_k of every coordinate little-endian
into `words(d)` uint64 words (coordinate j is bit j % 64 of word j // 64); padding bits are ignored on
unpacking. XOR sharing: planes = P0 ^ P1 with P0 expanded from a seed, so either share alone is uniform,
and any pair of shares stands for *some* bits: bit-ness needs no check.
Low level: who sends which share and how the servers check them is `protocols.two_server`.
"""

from __future__ import annotations

import numpy as np

from secagg.beaver import expand_share

WORD = 64


def words(d: int) -> int:
    """uint64 words of one packed plane of d bits."""
    return -(-d // WORD)


def offset(x: np.ndarray, bits: int) -> np.ndarray:
    """u = x + 2^(b-1) mod 2^64 for x in Z_{2^64} (signed b-bit values land in [0, 2^b))."""
    return np.asarray(x, dtype=np.uint64) + np.uint64(1 << (bits - 1))


def to_planes(u: np.ndarray, bits: int) -> np.ndarray:
    """(..., bits, words(d)) packed planes of the low `bits` digits of u (..., d) uint64."""
    u = np.asarray(u, dtype=np.uint64)
    d = u.shape[-1]
    digits = ((u[..., None, :] >> np.arange(bits, dtype=np.uint64)[:, None]) & np.uint64(1)).astype(np.uint8)
    packed = np.packbits(digits, axis=-1, bitorder="little")
    pad = words(d) * 8 - packed.shape[-1]
    if pad:
        packed = np.concatenate([packed, np.zeros(packed.shape[:-1] + (pad,), dtype=np.uint8)], axis=-1)
    return np.ascontiguousarray(packed).view("<u8").astype(np.uint64)


def unpack(planes: np.ndarray, d: int) -> np.ndarray:
    """(..., bits, d) uint8 digits (0 or 1) of packed planes (..., bits, words(d))."""
    raw = np.ascontiguousarray(planes, dtype="<u8").view(np.uint8)
    return np.unpackbits(raw, axis=-1, bitorder="little")[..., :d]


def from_planes(planes: np.ndarray, d: int) -> np.ndarray:
    """sum_k 2^k digit_k as uint64 (..., d): the inverse of `to_planes` (assembled a byte at a time)."""
    digits = unpack(planes, d)
    bits = digits.shape[-2]
    out = np.zeros(digits.shape[:-2] + (d,), dtype="<u8")
    as_bytes = out.view(np.uint8).reshape(out.shape + (8,))
    for g in range(0, bits, 8):
        byte = np.zeros(digits.shape[:-2] + (d,), dtype=np.uint8)
        for k in range(g, min(g + 8, bits)):
            byte |= digits[..., k, :] << np.uint8(k - g)
        as_bytes[..., g // 8] = byte
    return out.astype(np.uint64)


def expand_planes(seed: bytes, shape: tuple[int, ...], domain: bytes) -> np.ndarray:
    """Uniform packed planes of the given shape (..., bits, words) from `seed`."""
    return expand_share(seed, shape, domain)


def share_planes(planes: np.ndarray, seed: bytes, domain: bytes) -> np.ndarray:
    """P1 = planes ^ P0 with P0 = `expand_planes(seed)`: the explicit share when the other one is `seed`."""
    return np.bitwise_xor(planes, expand_planes(seed, planes.shape, domain))
