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


def _register_layers() -> None:
    """Imports every module of `protocols.layers`: each registers its layer factories (`protocols.core.stack`),
    so a new layer is one new file there."""
    import importlib
    import pkgutil

    from protocols import layers

    for module in pkgutil.iter_modules(layers.__path__):
        importlib.import_module(f"{layers.__name__}.{module.name}")


_register_layers()
