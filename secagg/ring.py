"""Vectors over the ring Z_{2^b}, b in [1, 64], on numpy unsigned integers that wrap for free.

An element is stored in the smallest unsigned dtype that holds b bits (uint8/16/32/64); only its low
b bits are meaningful and every operation here reduces them. Most callers want
`secagg.encoding.FixedPoint`, which maps float vectors into this ring and back.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np


def _dtype_for(bits: int) -> np.dtype:
    for width in (8, 16, 32, 64):
        if bits <= width:
            return np.dtype(f"<u{width // 8}")
    raise AssertionError("unreachable")


@dataclass(frozen=True, slots=True)
class Ring:
    """The ring Z_{2^bits}. `dtype` is the storage dtype; `modulus` = 2**bits (a Python int)."""

    bits: int

    def __post_init__(self) -> None:
        if not isinstance(self.bits, int) or not 1 <= self.bits <= 64:
            raise ValueError(f"bits must be an integer in [1, 64], found {self.bits!r}")

    @property
    def dtype(self) -> np.dtype:
        return _dtype_for(self.bits)

    @property
    def modulus(self) -> int:
        return 1 << self.bits

    @property
    def mask(self) -> int:
        """2**bits - 1, the mask of the meaningful low bits."""
        return (1 << self.bits) - 1

    @property
    def element_bytes(self) -> int:
        """Bytes one element takes on the wire: ceil(bits / 8)."""
        return (self.bits + 7) // 8

    def reduce(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Returns x mod 2**bits (x in `dtype`); in place when `out is x`."""
        if self.bits == 8 * self.dtype.itemsize:
            if out is None:
                return x.copy()
            if out is not x:
                out[...] = x
            return out
        return np.bitwise_and(x, self.dtype.type(self.mask), out=out)

    def zeros(self, d: int) -> np.ndarray:
        return np.zeros(d, dtype=self.dtype)

    def add(self, a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """(a + b) mod 2**bits."""
        return self.reduce(np.add(a, b, out=out), out=out)

    def sub(self, a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """(a - b) mod 2**bits."""
        return self.reduce(np.subtract(a, b, out=out), out=out)

    def sum(self, rows: np.ndarray) -> np.ndarray:
        """Sum over axis 0 of a 2-D array, mod 2**bits (numpy's unsigned sum wraps mod 2**width)."""
        return self.reduce(rows.sum(axis=0, dtype=self.dtype))

    def check(self, x: np.ndarray, name: str = "x") -> np.ndarray:
        """Validates that `x` is a 1-D or 2-D array of ring elements; returns it unchanged.

        Raises:
            TypeError: if x is not a numpy array of this ring's dtype.
            ValueError: if an element has bits above `bits`.
        """
        if not isinstance(x, np.ndarray) or x.dtype != self.dtype:
            found = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
            raise TypeError(f"{name} must be a numpy array of dtype {self.dtype} for Z_2^{self.bits}, found {found}")
        if self.bits < 8 * self.dtype.itemsize and x.size and int(x.max()) > self.mask:
            raise ValueError(f"{name} has elements >= 2**{self.bits}")
        return x

    def to_bytes(self, x: np.ndarray) -> bytes:
        """Packs a 1-D vector little-endian, `element_bytes` bytes per element."""
        raw = np.ascontiguousarray(x, dtype=self.dtype).view(np.uint8).reshape(-1, self.dtype.itemsize)
        return raw[:, : self.element_bytes].tobytes()

    def to_buffer(self, x: np.ndarray) -> bytes | memoryview:
        """`to_bytes` without its copy where the packing is the array's own memory (elements of full width on a
        little-endian machine): a byte view of `x`, valid while `x` is unchanged; else `to_bytes(x)`."""
        if self.element_bytes != self.dtype.itemsize or sys.byteorder != "little":
            return self.to_bytes(x)
        return memoryview(np.ascontiguousarray(x, dtype=self.dtype)).cast("B")

    def from_bytes(self, data: bytes, d: int) -> np.ndarray:
        """Unpacks `d` elements packed by `to_bytes`.

        Raises:
            ValueError: if len(data) != d * element_bytes or an element has bits above `bits`.
        """
        if len(data) != d * self.element_bytes:
            raise ValueError(f"expected {d * self.element_bytes} bytes for {d} elements, found {len(data)}")
        raw = np.zeros((d, self.dtype.itemsize), dtype=np.uint8)
        raw[:, : self.element_bytes] = np.frombuffer(data, dtype=np.uint8).reshape(d, self.element_bytes)
        return self.check(raw.view(self.dtype).reshape(d), "unpacked vector")
