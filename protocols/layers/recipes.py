"""Recipes: vetted stacks with parameters derived consistently from a few choices."""

from __future__ import annotations

import math

from protocols.layers.clip import L2Clip
from protocols.layers.discretize import DiscreteEncode, choose_scale, rounded_l1_bound, rounded_l2_bound
from protocols.layers.noise import DistributedNoise
from protocols.layers.rotation import RandomizedHadamard
from protocols.protocol import Protocol, RingProtocol


def distributed_dp(
    protection: RingProtocol,
    *,
    clients: int,
    dim: int,
    clip: float,
    noise_multiplier: float,
    mechanism: str = "skellam",
    expected_clients: int | None = None,
    delta: float = 1e-5,
    wrap_probability: float = 1e-6,
    beta: float = math.exp(-0.5),
) -> Protocol:
    """clip -> randomized Hadamard -> scale + conditional rounding into Z_{2^b} -> noise shares -> `protection`.

    The total noise has stddev noise_multiplier * l2 (l2: the rounded sensitivity in integer units),
    split into `expected_clients` shares (default: all clients; pass the number you expect to survive,
    since fewer shares mean less noise and a larger reported epsilon). The scale comes from
    `choose_scale` for the ring of `protection`.

    Raises:
        ValueError: if the ring cannot hold the noisy sum at a useful scale (see `choose_scale`).
    """
    padded = 1 << max(0, (dim - 1).bit_length())
    expected = expected_clients or clients
    scale = choose_scale(bits=protection.bits, clients=clients, dim=padded, clip=clip, noise_stddev=noise_multiplier * clip,
                         wrap_probability=wrap_probability, beta=beta)
    l2 = rounded_l2_bound(clip * scale, padded, beta)
    noise = DistributedNoise(mechanism, (noise_multiplier * l2) ** 2 / expected, l2, rounded_l1_bound(l2, padded), protection, delta=delta)
    return L2Clip(clip, RandomizedHadamard(DiscreteEncode(scale, clip, noise, beta=beta)))
