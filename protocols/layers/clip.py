"""L2 clipping to a fixed norm."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from protocols.layers.transform import TransformLayer, local_guarantee
from protocols.protocol import Protocol
from protocols.report import Guarantee, Output
from secagg.randomness import Randomness


@dataclass(eq=False)
class L2Clip(TransformLayer):
    """x <- x * min(1, norm / ||x||_2), so every update has L2 norm <= `norm` (update units).

    Biased whenever a client is clipped; the guarantee reports how many were.
    """

    norm: float
    inner: Protocol
    name: str = "clip"

    def __post_init__(self) -> None:
        if not self.norm > 0:
            raise ValueError(f"clip norm must be > 0, found {self.norm}")

    def prepare(self, inputs: np.ndarray, rng: Randomness) -> None:
        self._clipped, self._n = 0, inputs.shape[0]

    def encode(self, client: int, row: np.ndarray, rng: Randomness) -> np.ndarray:
        x = np.asarray(row, dtype=np.float64)
        size = float(np.linalg.norm(x))
        if size > self.norm:
            self._clipped += 1
            return x * (self.norm / size)
        return x

    def decode(self, aggregate: np.ndarray, included: tuple[int, ...]) -> np.ndarray:
        return aggregate

    def guarantee(self, out: Output) -> Guarantee:
        return local_guarantee(self._n, exact=self._clipped == 0, parameters={"norm": self.norm, "clipped_clients": self._clipped},
                               notes="L2 sensitivity of one client's update = norm; biased for the clipped clients")
