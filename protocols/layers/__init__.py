"""Transform layers: a per-client transform before an inner protocol and its inverse on the aggregate
(the TFF aggregator-factory pattern). Nest them outermost first; the innermost is a protection protocol.

Every module here is imported (`LAYER_MODULES`) so that each registers its layer factories (`protocols.core.stack`):
a new layer is one new file."""

import importlib
import pkgutil

from protocols.layers.adaptive_clip import AdaptiveClip
from protocols.layers.central_noise import CentralGaussian, rule_sensitivity
from protocols.layers.clip import L2Clip
from protocols.layers.compression import RandK, StochasticQuantize, TopK
from protocols.layers.discretize import DiscreteEncode, choose_scale, rounded_l1_bound, rounded_l2_bound
from protocols.layers.local_noise import LocalGaussian
from protocols.layers.noise import DistributedNoise
from protocols.layers.recipes import DistributedDPParameters, central_dp, distributed_dp, distributed_dp_parameters, local_dp
from protocols.layers.rotation import RandomizedDFT, RandomizedHadamard

__all__ = [
    "AdaptiveClip",
    "CentralGaussian",
    "DiscreteEncode",
    "DistributedDPParameters",
    "DistributedNoise",
    "L2Clip",
    "LocalGaussian",
    "RandK",
    "RandomizedDFT",
    "RandomizedHadamard",
    "StochasticQuantize",
    "TopK",
    "central_dp",
    "choose_scale",
    "distributed_dp",
    "distributed_dp_parameters",
    "local_dp",
    "rounded_l1_bound",
    "rounded_l2_bound",
    "rule_sensitivity",
]

LAYER_MODULES = tuple(importlib.import_module(f"{__name__}.{m.name}") for m in pkgutil.iter_modules(__path__))
