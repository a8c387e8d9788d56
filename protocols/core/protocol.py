"""The interface of a protection layer: an interactive protocol that aggregates n clients' inputs.

A protocol that can run with its clients elsewhere (another process, another machine: see
`fl.flower_engine`) splits a round in two halves that share only public data:

    open_round(n, d, rng) -> OpenRound      server side: the public parameters every client needs,
                                            the server role, its stages, and `finish`
    client_role(i, row, public, rng, m)     client side: client i's role for this round, built from its
                                            own row, the public parameters and its own randomness;
                                            it records what it measured (per layer) in `m`
    client_state(c) / restore_client_state  what the stack keeps for client c (its persistent id, see
                                            `protocols.core.identity`) between rounds: an engine whose
                                            clients run elsewhere keeps it on the client's node

`run` is then `run_split`: both halves in this process, the frames carried by the in-process
transport. Another engine carries the same frames and calls the same halves.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from protocols.core.driver import ClientRole, CostMeter, ServerRole, drive
from protocols.core.pki import ClientIdentity, KeyDirectory
from protocols.core.report import Output
from protocols.core.schedule import DropoutSchedule, Stage
from protocols.core.transport import InProcessTransport
from secagg.randomness import Randomness
from secagg.ring import Ring


@dataclass
class RoundEnd:
    """What a round's server half is finished with: its meter, the carrier that counted the bytes
    (`bytes_up`, `bytes_down`, `bytes_between`), the rejected messages and each client's measurements."""

    meter: CostMeter
    transport: object
    rejected: list
    measurements: dict[int, dict] = field(default_factory=dict)
    dropouts: DropoutSchedule | None = None  # the schedule, when a simulation imposed one
    key_holder: Callable[[bytes, dict], tuple[bytes, float]] | None = None  # a remote key holder (see protocols.he.aggregation)
    deliver: Callable[[dict[int, bytes]], None] | None = None  # an engine's channel to client u after the round (protocols.he.hidden_state)
    second_server: object = None  # a link to a remote second server and dealer (see protocols.two_server.remote)


@dataclass
class OpenRound:
    public: dict  # JSON-ready: str, int, float, lists and dicts of them (bytes as hex)
    server: ServerRole
    stages: tuple[Stage, ...]
    finish: Callable[[RoundEnd], Output]
    clients_ready: Callable[[dict[int, dict]], None] | None = None  # the server reads what clients announced (public keys)
    use_roster: Callable[[list[int], KeyDirectory], None] | None = None  # rounds whose clients sign (see `seat`)

    def seat(self, roster: list[int], directory: KeyDirectory) -> None:
        """Rounds whose clients sign with long-term identities (`protocols.core.pki`): tells the server half the
        roster (position u is client roster[u]) and the directory it verifies signatures with, and puts the
        roster into `public`, before the public parameters go out. Each client then builds its role with
        `identity=` its own `ClientIdentity`, and checks the roster against its own directory.

        Raises:
            Refused: for a roster that lists an id twice or one without a key in `directory`.
        """
        if self.use_roster is not None:
            self.use_roster(list(roster), directory)


def matrix_shape(inputs: np.ndarray) -> tuple[int, int]:
    """(n, d) of a round's inputs, one row a client.

    Raises:
        TypeError: if `inputs` is not a 2-D numpy array.
    """
    if not isinstance(inputs, np.ndarray) or inputs.ndim != 2:
        raise TypeError(f"inputs must be an (n, d) array, found {getattr(inputs, 'shape', type(inputs).__name__)}")
    return inputs.shape


class RemoteUnsupported(NotImplementedError):
    """This protocol (or layer) cannot yet run with its clients outside the server's process."""


class Protocol(abc.ABC):
    """Aggregates an (n, d) array, one row a client; reports cost and guarantee."""

    name: str

    @property
    def splits(self) -> bool:
        """Whether this protocol's rounds split into a server half and client halves (remote clients)."""
        return type(self).open_round is not Protocol.open_round

    def open_round(self, n: int, d: int, rng: Randomness) -> OpenRound:
        """The server half of a round (see the module docstring)."""
        raise RemoteUnsupported(f"{type(self).__name__} cannot run with remote clients")

    def client_role(self, i: int, row: np.ndarray, public: dict, rng: Randomness, measurements: dict) -> ClientRole:
        """Client i's half of a round; a protocol whose clients sign takes a keyword `identity` (a `ClientIdentity`) too."""
        raise RemoteUnsupported(f"{type(self).__name__} cannot run with remote clients")

    def reported(self) -> dict:
        """What `client_role` writes into its `measurements`, as a schema of `protocols.core.measurements` (a server
        checks a remote client's report against it); {}: nothing. A wrapper adds its inner protocol's."""
        return {}

    def client_state(self, client: int) -> dict[str, np.ndarray]:
        """What this stack keeps for `client` (a persistent id) between rounds, by layer name; {}: nothing."""
        return {}

    def restore_client_state(self, client: int, state: dict[str, np.ndarray]) -> None:
        """Sets what `client_state(client)` returns (a key left out: the layer has nothing for `client`)."""

    def run_split(self, inputs: np.ndarray, dropouts: DropoutSchedule, rng: Randomness, transport: InProcessTransport) -> Output:
        """Both halves in this process: client i's randomness is `rng.fork(f"client {i}")`, drawn after
        `open_round`, which is what any other engine must reproduce to get the same round. A round whose
        clients sign (`OpenRound.use_roster`) seats client i at position i with its simulated identity
        (`ClientIdentity.simulated(i)`: this process simulates the PKI)."""
        n, d = matrix_shape(inputs)
        opened = self.open_round(n, d, rng)
        signing = opened.use_roster is not None
        if signing:
            opened.seat(list(range(n)), KeyDirectory())
        measurements: dict[int, dict] = {i: {} for i in range(n)}
        clients = [self.client_role(i, inputs[i], opened.public, rng.fork(f"client {i}"), measurements[i],
                                    **({"identity": ClientIdentity.simulated(i)} if signing else {})) for i in range(n)]
        if opened.clients_ready is not None:
            opened.clients_ready(measurements)
        meter = CostMeter(n)
        rejected = drive(opened.server, clients, opened.stages, dropouts, transport, meter)
        return opened.finish(RoundEnd(meter, transport, rejected, measurements, dropouts))

    @abc.abstractmethod
    def run(self, inputs: np.ndarray, dropouts: DropoutSchedule, rng: Randomness, transport: InProcessTransport) -> Output:
        """One round. `rng` supplies every random choice (secrets included); `transport` carries the frames.

        Raises:
            ValueError: if the inputs do not fit the protocol (shape, dtype, n).
            BelowThreshold: if too few clients survive; nothing is revealed.
        """


class RingProtocol(Protocol):
    """A protocol over vectors of Z_{2^bits}: inputs are (n, d) arrays of the ring's dtype."""

    bits: int

    @property
    def ring(self) -> Ring:
        return Ring(self.bits)

    def check_inputs(self, inputs: np.ndarray) -> tuple[int, int]:
        """Validates an (n, d) array of this protocol's ring; returns (n, d)."""
        self.ring.check(inputs, "inputs")
        if inputs.ndim != 2 or inputs.shape[1] < 1:
            raise ValueError(f"inputs must have shape (n, d) with d >= 1, found {inputs.shape}")
        return inputs.shape
