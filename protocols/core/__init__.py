"""The protocol interface and what every protocol family shares: driver, transport, wire format, message
kinds, report types, dropout schedules, errors, `secure_sum`, and the clear roles (`PlainSum`)."""

from protocols.core.deviations import Deviation
from protocols.core.errors import Aborted, BelowThreshold, InvalidInput, MalformedMessage, ProtocolError, Refused, ReplayedMessage
from protocols.core.messages import Kind
from protocols.core.plain import PlainSum
from protocols.core.protocol import OpenRound, Protocol, RingProtocol, RoundEnd
from protocols.core.report import Cost, Guarantee, LayerReport, Output, ThreatModel, format_reports
from protocols.core.schedule import DropoutSchedule, Stage
from protocols.core.secure_sum import secure_sum

__all__ = [
    "Aborted",
    "BelowThreshold",
    "Cost",
    "Deviation",
    "DropoutSchedule",
    "Guarantee",
    "InvalidInput",
    "Kind",
    "LayerReport",
    "MalformedMessage",
    "OpenRound",
    "Output",
    "PlainSum",
    "Protocol",
    "ProtocolError",
    "Refused",
    "ReplayedMessage",
    "RingProtocol",
    "RoundEnd",
    "Stage",
    "ThreatModel",
    "format_reports",
    "secure_sum",
]
