"""Floor 2: aggregation protocols, their layers and the per-layer report."""

from protocols.errors import Aborted, BelowThreshold, MalformedMessage, ProtocolError, Refused, ReplayedMessage
from protocols.plain import PlainSum
from protocols.protocol import Protocol, RingProtocol
from protocols.report import Cost, Guarantee, LayerReport, Output, ThreatModel, format_reports
from protocols.schedule import DropoutSchedule, Stage
from protocols.secagg import SecAgg, SecAggPlus
from protocols.secure_sum import secure_sum

__all__ = [
    "Aborted",
    "BelowThreshold",
    "Cost",
    "DropoutSchedule",
    "Guarantee",
    "LayerReport",
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
    "format_reports",
    "secure_sum",
]
