"""The stacks the suite and the scaling curves benchmark: how each is built for (n, d), and its inputs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from protocols import CKKSAggregation, CKKSRobust, PlainSum, SecAgg, SecAggPlus, TwoServerRobust
from protocols.layers import distributed_dp
from protocols.robust import PlainRobust
from secagg.ring import Ring


@dataclass(frozen=True)
class Case:
    """A stack to run: `make(n, d)` builds it, `inputs(n, d)` its (n, d) inputs."""

    name: str
    make: Callable[[int, int], object]
    inputs: Callable[[int, int], np.ndarray]


def ring_inputs(bits: int) -> Callable[[int, int], np.ndarray]:
    ring = Ring(bits)
    return lambda n, d: ring.reduce(np.random.default_rng(n + d).integers(0, 2**bits, (n, d), dtype=np.uint64).astype(ring.dtype))


def float_inputs(n: int, d: int) -> np.ndarray:
    x = np.random.default_rng(n + d).normal(0, 1 / np.sqrt(d), (n, d))
    x[: n // 5] *= 10  # f = n / 5 outliers
    return (x / np.maximum(1.0, np.linalg.norm(x, axis=1, keepdims=True))).astype(np.float32)


def small_ring_inputs(n: int, d: int) -> np.ndarray:
    """Encoded clipped updates in the largest ring whose distances stay exact in Z_2^64 (two-server)."""
    bits = min(24, (62 - max(1, d - 1).bit_length()) // 2)
    ring = Ring(bits)
    return ring.reduce(np.round(float_inputs(n, d).astype(np.float64) * 2.0 ** (bits - 3)).astype(np.int64).astype(ring.dtype))


def two_server(n: int, d: int) -> TwoServerRobust:
    return TwoServerRobust(rule="multi_krum", f=max(1, n // 5), bits=min(24, (62 - max(1, d - 1).bit_length()) // 2))


CASES = {
    "plain": Case("plain", lambda n, d: PlainSum(bits=32), ring_inputs(32)),
    "secagg": Case("secagg", lambda n, d: SecAgg(bits=32), ring_inputs(32)),
    "secagg+": Case("secagg+", lambda n, d: SecAggPlus.for_clients_or_complete(n, bits=32, dropout=0.1), ring_inputs(32)),
    "ddp+secagg+": Case("ddp+secagg+", lambda n, d: distributed_dp(SecAggPlus.for_clients_or_complete(n, bits=20, dropout=0.1), clients=n,
                                                                   dim=d, clip=1.0, noise_multiplier=1.0,
                                                                   expected_clients=max(1, int(0.9 * n))), float_inputs),
    "robust": Case("robust", lambda n, d: PlainRobust(rule="multi_krum", f=max(1, n // 5)), float_inputs),
    "two-server": Case("two-server", two_server, small_ring_inputs),
    "ckks": Case("ckks", lambda n, d: CKKSAggregation(recompute=False, min_clients=1), float_inputs),
    "ckks-robust": Case("ckks-robust", lambda n, d: CKKSRobust(rule="multi_krum", f=max(1, n // 5), norm_bound=1.0), float_inputs),
}

_PROTOCOLS: dict[tuple[str, int, int], object] = {}  # HE key generation is setup: one key set a case and size


def protocol_for(case: Case, n: int, d: int):
    """`case.make(n, d)`, built once a case and size for every benchmark of this process."""
    return _PROTOCOLS.setdefault((case.name, n, d), case.make(n, d))
