"""Runs a client/server protocol round in process, under a dropout schedule, and measures its cost.

A protocol supplies a server with `requests() -> {client: frame}`, `receive(frame, link)` and
`close()`, and clients with `handle(frame) -> frame` and an `aborted` flag. The driver delivers
every request through the transport, lets each live client answer, and closes the stage.
Messages rejected with a `ProtocolError` are recorded and the round goes on without them;
`close()` raising (below threshold) ends the round with that error.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import contextmanager
from typing import Protocol as Interface

import numpy as np

from protocols.core.errors import ProtocolError
from protocols.core.report import Cost
from protocols.core.schedule import DropoutSchedule, Stage
from protocols.core.transport import InProcessTransport
from protocols.core.wire import SERVER, party_name


class ServerRole(Interface):
    def requests(self) -> dict[int, bytes]: ...
    def receive(self, data: bytes, link: int) -> None: ...
    def close(self) -> None: ...


class ClientRole(Interface):
    aborted: bool

    def handle(self, data: bytes) -> bytes: ...


class CostMeter:
    """CPU seconds (`time.thread_time`) spent in each party's handlers."""

    def __init__(self, n: int) -> None:
        self.client_seconds = np.zeros(n)
        self.server_seconds = 0.0
        self.stage = "setup"
        self._client_by_stage: dict[str, np.ndarray] = {}
        self._server_by_stage: dict[str, float] = {}
        self.party_seconds: dict[str, float] = {}

    @contextmanager
    def client(self, i: int):
        start = time.thread_time()
        try:
            yield
        finally:
            self.record_client(i, time.thread_time() - start)

    def record_client(self, i: int, seconds: float) -> None:
        """CPU seconds client i spent in the current stage (measured here, or by a client in another process)."""
        self.client_seconds[i] += seconds
        self._client_by_stage.setdefault(self.stage, np.zeros(len(self.client_seconds)))[i] += seconds

    @contextmanager
    def server(self):
        start = time.thread_time()
        try:
            yield
        finally:
            spent = time.thread_time() - start
            self.server_seconds += spent
            self._server_by_stage[self.stage] = self._server_by_stage.get(self.stage, 0.0) + spent

    @contextmanager
    def party(self, name: str):
        """Time spent by a non-client party other than the server (key holder, second server, dealer)."""
        start = time.thread_time()
        try:
            yield
        finally:
            self.record_party(name, time.thread_time() - start)

    def record_party(self, name: str, seconds: float) -> None:
        """CPU seconds of a non-client party (measured here, or by the party in another process)."""
        self.party_seconds[name] = self.party_seconds.get(name, 0.0) + seconds

    def cost(self, transport: InProcessTransport, rounds: int) -> Cost:
        up, down = np.array(transport.bytes_up), np.array(transport.bytes_down)
        took_part = (up + down) > 0
        if not took_part.any():
            took_part[:] = True
        secs = self.client_seconds[took_part]
        return Cost(
            client_seconds_by_stage={k: float(v[v > 0].mean()) for k, v in self._client_by_stage.items() if (v > 0).any()},
            server_seconds_by_stage=dict(self._server_by_stage),
            client_seconds_mean=float(secs.mean()),
            client_seconds_max=float(secs.max()),
            server_seconds=self.server_seconds,
            bytes_up_mean=float(up[took_part].mean()),
            bytes_up_max=int(up.max()),
            bytes_down_mean=float(down[took_part].mean()),
            bytes_down_max=int(down.max()),
            rounds=rounds,
            party_seconds=dict(self.party_seconds),
            bytes_between={f"{party_name(a)} -> {party_name(b)}": v for (a, b), v in transport.bytes_between.items()},
        )


def drive(
    server: ServerRole,
    clients: Sequence[ClientRole],
    stages: Sequence[Stage],
    dropouts: DropoutSchedule,
    transport: InProcessTransport,
    meter: CostMeter,
) -> list[ProtocolError]:
    """Runs `stages` in order; returns the protocol errors of rejected messages.

    Raises:
        ProtocolError: whatever `server.close()` raises (e.g. BelowThreshold): the round is over.
    """
    rejected: list[ProtocolError] = []
    for stage in stages:
        meter.stage = stage.name.lower()
        with meter.server():
            requests = server.requests()
        for u, frame in requests.items():
            if not dropouts.active(u, stage) or clients[u].aborted:
                continue
            for delivered in transport.carry(SERVER, u, frame):
                try:
                    with meter.client(u):
                        relaying = getattr(clients[u], "handle_relaying", None)
                        reply = clients[u].handle(delivered) if relaying is None else \
                            relaying(delivered, lambda dst, frame, u=u: transport.as_sent(u, dst, frame))
                except ProtocolError as exc:
                    rejected.append(exc)
                    continue
                for arriving in transport.carry(u, SERVER, reply):
                    try:
                        with meter.server():
                            server.receive(arriving, link=u)
                    except ProtocolError as exc:
                        rejected.append(exc)
        with meter.server():
            server.close()
    rejected.extend(transport.rejected)
    return rejected
