"""Robust aggregation in the clear: the rules, pre-aggregators, their (f, kappa) coefficients, and the
plaintext robust protocol. The reference every secure robust variant is checked against."""

from protocols.robust.compose import PREAGGREGATORS, RULES, aggregate
from protocols.robust.layer import PlainRobust
from protocols.robust.preaggregators import bucketing, nnm
from protocols.robust.robustness import kappa, lower_bound, nnm_kappa
from protocols.robust.rules import (
    centered_clipping,
    coordinate_median,
    geometric_median,
    krum,
    krum_scores,
    mean,
    multi_krum,
    trimmed_mean,
)
from protocols.robust.validation import squared_distances

__all__ = [
    "PREAGGREGATORS",
    "RULES",
    "PlainRobust",
    "aggregate",
    "bucketing",
    "centered_clipping",
    "coordinate_median",
    "geometric_median",
    "kappa",
    "krum",
    "krum_scores",
    "lower_bound",
    "mean",
    "multi_krum",
    "nnm",
    "nnm_kappa",
    "squared_distances",
    "trimmed_mean",
]
