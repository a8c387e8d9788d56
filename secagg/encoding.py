"""Fixed-point encoding of float vectors into Z_{2^b} and signed decoding.

x (float) -> round(x * scale) mod 2**b, and back: y >= 2**(b-1) reads as y - 2**b, then / scale.
A sum of n encoded vectors decodes exactly to the sum of the rounded values as long as every
partial sum stays in [-2**(b-1), 2**(b-1)); `FixedPoint.check_sum_fits` checks that bound before
anything is encoded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from secagg.randomness import Randomness
from secagg.ring import Ring

ROUNDINGS = ("nearest", "stochastic")


@dataclass(frozen=True, slots=True)
class FixedPoint:
    """Encodes float vectors at `scale` integer units per update unit into `ring`.

    Rounding "nearest" is deterministic (error <= 1/(2*scale) per coordinate, biased);
    "stochastic" rounds up with probability frac(x*scale), so E[decode(encode(x))] = x
    (error < 1/scale per coordinate, unbiased).
    """

    scale: float
    ring: Ring

    def __post_init__(self) -> None:
        if not np.isfinite(self.scale) or self.scale <= 0:
            raise ValueError(f"scale must be a finite positive number, found {self.scale}")

    @property
    def max_abs_int(self) -> int:
        """Largest |integer| a decoded value may have: 2**(b-1) - 1."""
        return (1 << (self.ring.bits - 1)) - 1

    def check_sum_fits(self, n: int, max_abs: float) -> None:
        """Raises OverflowError unless a sum of n vectors with |x_j| <= max_abs decodes exactly.

        The bound is n * (ceil(max_abs * scale)) <= 2**(b-1) - 1 (rounding may add 1 unit).
        """
        if n < 1:
            raise ValueError(f"n must be >= 1, found {n}")
        worst = n * int(np.ceil(max_abs * self.scale))
        if worst > self.max_abs_int:
            raise OverflowError(
                f"a sum of {n} vectors with |x| <= {max_abs} at scale {self.scale} reaches {worst} integer units, "
                f"beyond 2**{self.ring.bits - 1} - 1 = {self.max_abs_int}: lower the scale or raise bits"
            )

    def encode(self, x: np.ndarray, *, rounding: str = "nearest", rng: Randomness | None = None) -> np.ndarray:
        """Returns round(x * scale) mod 2**b as ring elements.

        Raises:
            ValueError: for an unknown rounding, non-finite x, or a value whose integer exceeds 2**(b-1) - 1;
                or for stochastic rounding without `rng`.
        """
        x = np.asarray(x, dtype=np.float64)
        if rounding not in ROUNDINGS:
            raise ValueError(f"rounding must be one of {ROUNDINGS}, found {rounding!r}")
        if not np.all(np.isfinite(x)):
            raise ValueError("x contains NaN or infinity")
        scaled = x * self.scale
        if rounding == "nearest":
            ints = np.rint(scaled)
        else:
            if rng is None:
                raise ValueError("stochastic rounding needs rng")
            floor = np.floor(scaled)
            uniform = (rng.uint64(scaled.size) >> np.uint64(11)).astype(np.float64) * 2.0**-53
            ints = floor + (uniform.reshape(scaled.shape) < scaled - floor)
        if ints.size and np.max(np.abs(ints)) > self.max_abs_int:
            raise ValueError(f"a value exceeds the signed range of Z_2^{self.ring.bits} at scale {self.scale}")
        return self.ring.reduce(ints.astype(np.int64).astype(self.ring.dtype))

    def decode(self, y: np.ndarray) -> np.ndarray:
        """Reads ring elements as signed integers in [-2**(b-1), 2**(b-1)) and divides by scale."""
        y = self.ring.check(np.asarray(y), "y").astype(np.uint64)
        shift = 64 - self.ring.bits  # sign-extend from b bits: move bit b-1 to bit 63, shift back arithmetically
        signed = (y << np.uint64(shift)).view(np.int64) >> np.int64(shift)
        return signed.astype(np.float64) / self.scale
