"""Privacy accounting: mechanisms as data, their Renyi-DP, Poisson sampling, composition over rounds,
conversion to (epsilon, delta), and calibration of the noise for a target epsilon.

    >>> from protocols.accounting import Skellam, epsilon
    >>> epsilon(Skellam(local_mu=..., clients=100, dim=d, l2_sensitivity=..., l1_sensitivity=...), steps=100, delta=1e-5)
"""

from protocols.accounting.hidden_state import ConvexSmooth, HiddenStateEpsilon, last_iterate_epsilon
from protocols.accounting.mechanisms import DistributedDiscreteGaussian, Gaussian, Mechanism, Skellam
from protocols.accounting.rdp import ORDERS, calibrate, compose_epsilon, ddg_rdp, epsilon, rdp_curve, skellam_rdp, subsampled_rdp

__all__ = [
    "ORDERS",
    "ConvexSmooth",
    "HiddenStateEpsilon",
    "DistributedDiscreteGaussian",
    "Gaussian",
    "Mechanism",
    "Skellam",
    "calibrate",
    "compose_epsilon",
    "ddg_rdp",
    "epsilon",
    "last_iterate_epsilon",
    "rdp_curve",
    "skellam_rdp",
    "subsampled_rdp",
]
