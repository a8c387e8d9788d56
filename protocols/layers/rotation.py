"""Random rotation before discretization (Kairouz, Liu, Steinke, ICML 2021): a randomized Hadamard
transform flattens each update so that every coordinate is about ||x|| / sqrt(d'), which lets a
small ring hold the sum and spreads the rounding error evenly."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from protocols.layers.transform import TransformLayer
from protocols.protocol import Protocol
from protocols.report import Guarantee, Output, ThreatModel
from secagg.randomness import Randomness


def hadamard(x: np.ndarray) -> np.ndarray:
    """Orthonormal fast Walsh-Hadamard transform along the last axis (length a power of 2): H x / sqrt(len).
    log2(len) vectorized butterfly passes; H / sqrt(len) is symmetric and its own inverse."""
    length = x.shape[-1]
    if length & (length - 1):
        raise ValueError(f"Hadamard length must be a power of 2, found {length}")
    y = np.array(x, dtype=np.float64)
    h = 1
    while h < length:
        y = y.reshape(*x.shape[:-1], -1, 2, h)
        a, b = y[..., 0, :], y[..., 1, :]
        y = np.stack([a + b, a - b], axis=-2)
        h *= 2
    return y.reshape(x.shape) / math.sqrt(length)


@dataclass(eq=False)
class RandomizedHadamard(TransformLayer):
    """x -> H D pad(x) / sqrt(d'), with D a diagonal of uniform signs drawn per round from public
    randomness, d' the next power of 2 >= d. The server applies D H / sqrt(d') to the aggregate and
    drops the padding: exact up to float64 rounding, since the rotation is linear and orthogonal."""

    inner: Protocol
    name: str = "rotation"

    def prepare(self, inputs: np.ndarray, rng: Randomness) -> None:
        self._n, self._d = inputs.shape
        self._padded = 1 << max(0, (self._d - 1).bit_length())
        self._signs = np.where(rng.fork("rotation signs").uint64(self._padded) & np.uint64(1), 1.0, -1.0)

    def encode(self, client: int, row: np.ndarray, rng: Randomness) -> np.ndarray:
        padded = np.zeros(self._padded)
        padded[: self._d] = row
        return hadamard(padded * self._signs)

    def decode(self, aggregate: np.ndarray, included: tuple[int, ...]) -> np.ndarray:
        return (hadamard(np.asarray(aggregate, dtype=np.float64)) * self._signs)[: self._d]

    def guarantee(self, out: Output) -> Guarantee:
        return Guarantee(
            threat_model=ThreatModel.LOCAL,
            server_learns="nothing from this layer (the signs are public)",
            collusion="not applicable",
            dropout_tolerance=self._n,
            exact=True,
            numeric_error=1e-12,
            parameters={"d": self._d, "padded_d": self._padded},
            notes=f"inner layers carry {self._padded} coordinates for {self._d}",
        )
