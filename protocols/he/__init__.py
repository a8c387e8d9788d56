"""Homomorphic aggregation with a separate key holder: CKKS/BFV sums, the key holder and its own policy,
the hidden-state model and robust rules over CKKS."""

from protocols.he.aggregation import BFVAggregation, CKKSAggregation
from protocols.he.hidden_state import HiddenStateCKKS
from protocols.he.key_holder import KeyHolder
from protocols.he.policy import KeyHolderPolicy, ReleaseLedger
from protocols.he.robust import CKKSRobust

__all__ = ["BFVAggregation", "CKKSAggregation", "CKKSRobust", "HiddenStateCKKS", "KeyHolder", "KeyHolderPolicy", "ReleaseLedger"]
