"""Floor 2: aggregation protocols, their layers and the per-layer report."""

from protocols.deviations import Deviation
from protocols.errors import Aborted, BelowThreshold, InvalidInput, MalformedMessage, ProtocolError, Refused, ReplayedMessage
from protocols.he_aggregation import BFVAggregation, CKKSAggregation
from protocols.he_hidden_state import HiddenStateCKKS
from protocols.he_robust import CKKSRobust
from protocols.plain import PlainSum
from protocols.protocol import Protocol, RingProtocol
from protocols.report import Cost, Guarantee, LayerReport, Output, ThreatModel, format_reports
from protocols.schedule import DropoutSchedule, Stage
from protocols.secagg import SecAgg, SecAggPlus
from protocols.secure_sum import secure_sum
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
