"""Random rotations before discretization (Kairouz, Liu, Steinke, ICML 2021): a random orthogonal map
flattens each update so that every coordinate is about ||x|| / sqrt(d'), which lets a small ring hold
the sum and spreads the rounding error evenly. Two variants: randomized Hadamard (d' = next power of
2) and randomized real DFT (d' = next even number, so less padding)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from protocols.core.protocol import Protocol
from protocols.core.report import Guarantee, Output
from protocols.core.stack import Field, StackContext, register
from protocols.layers.transform import TransformLayer, local_guarantee
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


def real_dft(x: np.ndarray) -> np.ndarray:
    """Orthogonal real DFT along the last axis (even length m): [Re F_0, sqrt2 Re F_1..F_{m/2-1}, Re F_{m/2},
    sqrt2 Im F_1..F_{m/2-1}] with F = rfft(x, norm="ortho")."""
    m = x.shape[-1]
    if m % 2:
        raise ValueError(f"real DFT length must be even, found {m}")
    f = np.fft.rfft(x, norm="ortho")
    return np.concatenate([f[..., :1].real, math.sqrt(2) * f[..., 1:-1].real, f[..., -1:].real, math.sqrt(2) * f[..., 1:-1].imag], axis=-1)


def inverse_real_dft(y: np.ndarray) -> np.ndarray:
    """Inverse of `real_dft`."""
    m = y.shape[-1]
    half = m // 2
    f = np.zeros(y.shape[:-1] + (half + 1,), dtype=np.complex128)
    f[..., 0] = y[..., 0]
    f[..., 1:half] = (y[..., 1:half] + 1j * y[..., half + 1 :]) / math.sqrt(2)
    f[..., half] = y[..., half]
    return np.fft.irfft(f, n=m, norm="ortho")


@dataclass(eq=False)
class RandomizedHadamard(TransformLayer):
    """x -> H D pad(x) / sqrt(d'), with D a diagonal of uniform signs drawn per round from public
    randomness, d' the next power of 2 >= d. The server applies D H / sqrt(d') to the aggregate and
    drops the padding: exact up to float64 rounding, since the rotation is linear and orthogonal."""

    inner: Protocol
    name: str = "rotation"

    @staticmethod
    def padded_dim(d: int) -> int:
        return 1 << max(0, (d - 1).bit_length())

    def forward(self, x: np.ndarray) -> np.ndarray:
        return hadamard(x)

    def backward(self, y: np.ndarray) -> np.ndarray:
        return hadamard(y)

    def prepare(self, n: int, d: int, rng: Randomness) -> None:
        self._n, self._d = n, d
        self._padded = self.padded_dim(self._d)
        self._signs = np.where(rng.fork("rotation signs").uint64(self._padded) & np.uint64(1), 1.0, -1.0)

    def output_dim(self, d: int) -> int:
        return self.padded_dim(d)

    def encode(self, client: int, row: np.ndarray, rng: Randomness) -> np.ndarray:
        padded = np.zeros(self._padded)
        padded[: self._d] = row
        return self.forward(padded * self._signs)

    def decode(self, aggregate: np.ndarray, included: tuple[int, ...]) -> np.ndarray:
        return (self.backward(np.asarray(aggregate, dtype=np.float64)) * self._signs)[: self._d]

    def guarantee(self, out: Output, totals: dict[str, float]) -> Guarantee:
        # the inverse rotation R^T takes an inner error e (max |e_i| <= E, the inner layers' summed numeric_error) to
        # max |(R^T e)_j| <= ||e||_2 <= sqrt(d') E: this layer adds (sqrt(d') - 1) E (review 13: it stated 1e-12)
        inner = sum(r.guarantee.numeric_error for r in out.reports)
        return local_guarantee(self._n, exact=True, numeric_error=(math.sqrt(self._padded) - 1) * inner + 1e-12,
                               parameters={"d": self._d, "padded_d": self._padded},
                               notes=f"inner layers carry {self._padded} coordinates for {self._d}; their error E per coordinate is "
                                     f"at most sqrt({self._padded}) E after the inverse rotation",
                               server_learns="nothing from this layer (the signs are public)")


@dataclass(eq=False)
class RandomizedDFT(RandomizedHadamard):
    """The DFT variant: x -> R D pad(x), R the orthogonal real DFT, d' = d rounded up to even."""

    name: str = "rotation-dft"

    @staticmethod
    def padded_dim(d: int) -> int:
        return d + d % 2

    def forward(self, x: np.ndarray) -> np.ndarray:
        return real_dft(x)

    def backward(self, y: np.ndarray) -> np.ndarray:
        return inverse_real_dft(y)


@register("rotation", fields={"kind": Field(str, "hadamard", choices=("hadamard", "dft"))},
          about="random rotation (randomized Hadamard, or the real DFT): spreads an update over its coordinates")
def _rotation(values: dict, ctx: StackContext, inner) -> Protocol:
    cls = RandomizedHadamard if values["kind"] == "hadamard" else RandomizedDFT
    return cls(inner(ctx.replace(dim=cls.padded_dim(ctx.dim), rotated=True)))
