"""Pairwise-masking secure aggregation: SecAgg (complete graph) and SecAgg+ (Harary graph), passive and
active, as client and server state machines over the messages in `messages`."""

from protocols.masking.graph import HararyGraph, choose_degree_and_threshold, colluder_bound
from protocols.masking.secagg import SecAgg, SecAggPlus

__all__ = ["HararyGraph", "SecAgg", "SecAggPlus", "choose_degree_and_threshold", "colluder_bound"]
