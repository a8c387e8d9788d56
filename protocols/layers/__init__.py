"""Transform layers: a per-client transform before an inner protocol and its inverse on the aggregate
(the TFF aggregator-factory pattern). Nest them outermost first; the innermost is a protection protocol."""

from protocols.layers.adaptive_clip import AdaptiveClip
from protocols.layers.clip import L2Clip
from protocols.layers.compression import RandK, StochasticQuantize, TopK
from protocols.layers.discretize import DiscreteEncode, choose_scale, rounded_l1_bound, rounded_l2_bound
from protocols.layers.noise import DistributedNoise
from protocols.layers.recipes import DistributedDPParameters, distributed_dp, distributed_dp_parameters
from protocols.layers.rotation import RandomizedDFT, RandomizedHadamard

__all__ = [
    "AdaptiveClip",
    "DiscreteEncode",
    "DistributedDPParameters",
    "DistributedNoise",
    "L2Clip",
    "RandK",
    "RandomizedDFT",
    "RandomizedHadamard",
    "StochasticQuantize",
    "TopK",
    "choose_scale",
    "distributed_dp",
    "distributed_dp_parameters",
    "rounded_l1_bound",
    "rounded_l2_bound",
]
