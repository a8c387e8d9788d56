"""Floor 2: aggregation protocols, their layers and the per-layer report.

`core` (the interface, driver, wire, report), `masking` (SecAgg, SecAgg+), `he` (CKKS/BFV with a key
holder), `two_server` (additive shares), beside `layers`, `robust`, `accounting` and `dp`."""

from protocols.core import (
    Aborted,
    BelowThreshold,
    Cost,
    Deviation,
    DropoutSchedule,
    Guarantee,
    InvalidInput,
    LayerReport,
    MalformedMessage,
    Output,
    PlainSum,
    Protocol,
    ProtocolError,
    Refused,
    ReplayedMessage,
    RingProtocol,
    Stage,
    ThreatModel,
    format_reports,
    secure_sum,
)
from protocols.he import BFVAggregation, CKKSAggregation, CKKSRobust, HiddenStateCKKS
from protocols.layers import LAYER_MODULES  # noqa: F401  imported for their registrations (protocols.core.stack)
from protocols.masking import SecAgg, SecAggPlus
from protocols.two_server import TwoServerRobust

__all__ = [
    "Aborted",
    "BFVAggregation",
    "BelowThreshold",
    "CKKSAggregation",
    "CKKSRobust",
    "Cost",
    "Deviation",
    "DropoutSchedule",
    "Guarantee",
    "HiddenStateCKKS",
    "LayerReport",
    "InvalidInput",
    "MalformedMessage",
    "Output",
    "PlainSum",
    "Protocol",
    "ProtocolError",
    "Refused",
    "ReplayedMessage",
    "RingProtocol",
    "SecAgg",
    "SecAggPlus",
    "Stage",
    "ThreatModel",
    "TwoServerRobust",
    "format_reports",
    "secure_sum",
]

