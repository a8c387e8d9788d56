"""Clients that deviate from the protocol on purpose: the Byzantine participants of a simulated round.

A `Deviation` says what client i does instead of following the protocol, through three hooks the protocol
already has: `skip_protection` (its client-side transform layers send its row unprotected: no clipping, no
noise, rounding without the norm condition; see `TransformLayer.unprotected`), `tamper` (rewrites every frame
it sends, a transport hook as in `protocols.core.transport`, e.g. `protocols.byzantine_shares.ByzantineShares.tamper`)
and `drop` (it sends nothing from that stage on). `secure_sum(..., deviations={i: Deviation(...)})` applies them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

from protocols.core.schedule import Stage
from protocols.core.transport import Hook

_UNPROTECTED: ContextVar[frozenset[int]] = ContextVar("unprotected clients", default=frozenset())


@dataclass(frozen=True)
class Deviation:
    """What one client does instead of the protocol (any combination)."""

    skip_protection: bool = False
    tamper: Hook | None = None  # sees every frame of the round (to learn what it needs), rewrites its own
    drop: Stage | None = None

    def __post_init__(self) -> None:
        if self.drop is not None and not isinstance(self.drop, Stage):
            raise TypeError(f"drop must be a Stage or None, found {self.drop!r}")


@contextlib.contextmanager
def unprotected(clients: frozenset[int]) -> Iterator[None]:
    """Within the block, the client-side layers of this round send the rows of `clients` unprotected."""
    token = _UNPROTECTED.set(frozenset(clients))
    try:
        yield
    finally:
        _UNPROTECTED.reset(token)


def skips_protection(client: int) -> bool:
    """Whether `client` skips the client-side layers in the round being run (see `unprotected`)."""
    return client in _UNPROTECTED.get()
