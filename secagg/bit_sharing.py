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


def _transpose8(x: np.ndarray) -> np.ndarray:
    """Transposes the 8x8 bit matrix in each uint64 (bit 8 i + j <-> bit 8 j + i; Hacker's Delight, 7-3)."""
    for shift, mask in ((7, 0x00AA00AA00AA00AA), (14, 0x0000CCCC0000CCCC), (28, 0x00000000F0F0F0F0)):
        t = (x ^ (x >> np.uint64(shift))) & np.uint64(mask)
        x = x ^ t ^ (t << np.uint64(shift))
    return x


def to_planes(u: np.ndarray, bits: int) -> np.ndarray:
    """(..., bits, words(d)) packed planes of the low `bits` digits of u (..., d) uint64.

    Byte g of 8 consecutive coordinates is an 8x8 bit matrix; transposed, its byte i is byte (coordinate / 8)
    of plane 8 g + i."""
    u = np.asarray(u, dtype=np.uint64)
    lead, d = u.shape[:-1], u.shape[-1]
    w = words(d)
    values = np.zeros(lead + (w * WORD,), dtype="<u8")
    values[..., :d] = u
    value_bytes = values.view(np.uint8).reshape(lead + (w * 8, 8, 8))  # (..., byte column, coordinate in it, value byte)
    planes = np.zeros(lead + (-(-bits // 8) * 8, w * 8), dtype=np.uint8)
    for g in range(-(-bits // 8)):
        block = np.ascontiguousarray(value_bytes[..., g]).view("<u8")[..., 0]  # (..., byte column): byte j = coordinate j's byte g
        planes[..., 8 * g : 8 * g + 8, :] = np.moveaxis(_transpose8(block)[..., None].view(np.uint8), -1, -2)
    return np.ascontiguousarray(planes[..., :bits, :]).view("<u8").astype(np.uint64)


def unpack(planes: np.ndarray, d: int) -> np.ndarray:
    """(..., bits, d) uint8 digits (0 or 1) of packed planes (..., bits, words(d))."""
    raw = np.ascontiguousarray(planes, dtype="<u8").view(np.uint8)
    return np.unpackbits(raw, axis=-1, bitorder="little")[..., :d]


def from_planes(planes: np.ndarray, d: int) -> np.ndarray:
    """sum_k 2^k digit_k as uint64 (..., d): the inverse of `to_planes` (the same 8x8 bit transposes)."""
    planes = np.asarray(planes, dtype="<u8")
    lead, bits, w = planes.shape[:-2], planes.shape[-2], planes.shape[-1]
    groups = -(-bits // 8)
    padded = np.zeros(lead + (groups * 8, w), dtype="<u8")
    padded[..., :bits, :] = planes
    plane_bytes = padded.view(np.uint8)  # (..., plane, byte column)
    out = np.zeros(lead + (w * 8, 8), dtype="<u8")  # (..., byte column, coordinate in it)
    out_bytes = out.view(np.uint8).reshape(lead + (w * 8, 8, 8))
    for g in range(groups):
        block = np.ascontiguousarray(np.moveaxis(plane_bytes[..., 8 * g : 8 * g + 8, :], -2, -1)).view("<u8")[..., 0]
        out_bytes[..., g] = _transpose8(block)[..., None].view(np.uint8)
    return out.reshape(lead + (w * WORD,))[..., :d].astype(np.uint64)


def expand_planes(seed: bytes, shape: tuple[int, ...], domain: bytes) -> np.ndarray:
    """Uniform packed planes of the given shape (..., bits, words) from `seed`."""
    return expand_share(seed, shape, domain)


def share_planes(planes: np.ndarray, seed: bytes, domain: bytes) -> np.ndarray:
    """P1 = planes ^ P0 with P0 = `expand_planes(seed)`: the explicit share when the other one is `seed`."""
    return np.bitwise_xor(planes, expand_planes(seed, planes.shape, domain))
