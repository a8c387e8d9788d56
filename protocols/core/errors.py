"""Errors raised by protocols. Each carries the party and the stage where it happened.

Misbehaviour of a peer or of the network raises a subclass of `ProtocolError`; a caller's
mistake raises `ValueError`/`TypeError` naming the argument.
"""

from secagg.errors import SecAggError


class ProtocolError(SecAggError):
    """Base class: something a party received or observed stopped it."""

    def __init__(self, msg: str, *, party: str, stage: str) -> None:
        super().__init__(f"{party} at {stage}: {msg}")
        self.party, self.stage = party, stage


class MalformedMessage(ProtocolError):
    """Untrusted bytes failed to parse or authenticate, or came from the wrong sender, session or stage."""


class ReplayedMessage(MalformedMessage):
    """A second message of the same kind from the same sender in one stage."""


class BelowThreshold(ProtocolError):
    """Fewer than t parties (or shares) survive: the round aborts and reveals nothing."""


class Refused(ProtocolError):
    """An honest party refused a request that would break its guarantee (e.g. reveal both secrets of a peer)."""


class Aborted(ProtocolError):
    """The round cannot finish with a correct aggregate (e.g. shares inconsistent with a commitment)."""


class InvalidInput(ProtocolError):
    """A client's protected input failed validation (out of range, over the norm bound, shares that disagree):
    the client is excluded and the round goes on without it."""
