"""Privacy accounting: mechanisms as data, their Renyi-DP, client sampling (Poisson or m of n without
replacement), composition over rounds (cached curves, or the incremental `Accountant`), conversion to
(epsilon, delta), PLD for Gaussian runs (`tightest_epsilon`), the hidden-state last-iterate bound, and
calibration of the noise for a target epsilon.

    >>> from protocols.accounting import Skellam, epsilon
    >>> epsilon(Skellam(local_mu=..., clients=100, dim=d, l2_sensitivity=..., l1_sensitivity=...), steps=100, delta=1e-5)
"""

from protocols.accounting.accountant import Accountant, Epsilon, tightest_epsilon
from protocols.accounting.hidden_state import ConvexSmooth, HiddenStateEpsilon, last_iterate_epsilon
from protocols.accounting.mechanisms import DistributedDiscreteGaussian, Gaussian, Mechanism, Skellam
from protocols.accounting.rdp import (
    ORDERS,
    SAMPLINGS,
    calibrate,
    compose_epsilon,
    composed_rdp,
    ddg_rdp,
    epsilon,
    rdp_curve,
    skellam_rdp,
    subsampled_rdp,
    to_epsilon,
)

__all__ = [
    "ORDERS",
    "SAMPLINGS",
    "Accountant",
    "Epsilon",
    "ConvexSmooth",
    "HiddenStateEpsilon",
    "DistributedDiscreteGaussian",
    "Gaussian",
    "Mechanism",
    "Skellam",
    "calibrate",
    "compose_epsilon",
    "composed_rdp",
    "ddg_rdp",
    "epsilon",
    "last_iterate_epsilon",
    "rdp_curve",
    "skellam_rdp",
    "subsampled_rdp",
    "tightest_epsilon",
    "to_epsilon",
]
