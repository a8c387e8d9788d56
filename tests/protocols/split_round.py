"""The harness of the tests that split a two-server round as on Flower: S0 drives the clients in process, then runs
its half of the servers' program with S1 and the dealer behind `protocols.two_server.remote.in_process` (S1 replayed
over the frames S0 relays, with its own configuration and round key). Each attack hooks in where its adversary acts:
a client's or the network's frames (`tamper`, `wire`), what S0 holds after the clients' stages (`held`), the public
parameters S0 states to S1 (`s1_public`), S0's link to S1 and the dealer (`link_hook`, `replacing`)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from protocols.core.driver import CostMeter, drive
from protocols.core.pki import ClientIdentity, KeyDirectory
from protocols.core.protocol import OpenRound, RoundEnd
from protocols.core.report import Output
from protocols.core.schedule import DropoutSchedule
from protocols.core.transport import InProcessTransport
from protocols.two_server import TwoServerRobust
from protocols.two_server.identities import RoundKeyPin, ShareKeys, round_key_message
from protocols.two_server.remote import RemoteServers, in_process
from secagg.agreement import X25519Agreement
from secagg.randomness import SeededRandomness, SystemRandomness
from secagg.signatures import Signer


@dataclass(frozen=True)
class Identities:
    """The parties' long-term keys as on Flower: S1's round key signed by `s1` for `run` and `round_number`, the clients
    pinned to it, each signing its share with its key in `signers` (None: the simulated ones), S1 verifying them under
    its own copy of `directory`, which S0 seats the round with."""

    s1: Signer
    run: int
    round_number: int
    directory: KeyDirectory = field(default_factory=KeyDirectory)
    signers: dict[int, Signer] | None = None

    @classmethod
    def provisioned(cls, s1: Signer, run: int, round_number: int, label: bytes, count: int, source: str) -> "Identities":
        """`count` client keys that are not the simulated ones (client c's Ed25519 key from sha256(label % c), so S0
        holds none of their secrets), in a directory named `source`."""
        signers = {c: Signer.from_private_bytes(hashlib.sha256(label % c).digest()) for c in range(count)}
        return cls(s1, run, round_number, KeyDirectory({c: v.public_bytes() for c, v in signers.items()}, source), signers)

    def identity(self, i: int) -> ClientIdentity:
        return ClientIdentity.simulated(i) if self.signers is None else ClientIdentity(i, self.signers[i], self.directory)

    def signature(self, key: X25519Agreement) -> bytes:
        """S1's signature of its round key `key` for this run and round."""
        return self.s1.sign(round_key_message(self.run, key.public_bytes(), self.round_number))

    @property
    def pin(self) -> RoundKeyPin:
        return RoundKeyPin(self.s1.public_bytes(), self.run, self.round_number)

    @property
    def share_keys(self) -> ShareKeys:
        return ShareKeys(self.directory, self.run, self.round_number)


def replacing(**wrappers: Callable) -> Callable[[RemoteServers, dict], RemoteServers]:
    """A `link_hook` that replaces each named callable of S0's link by `wrapper(genuine)`: `_ask` (S0's relay to S1,
    frames -> (S1's frames, error)), `deal` (S0's dealer request), `post` / `fetch` (S0's program to and from S1)."""

    def hook(link: RemoteServers, public: dict) -> RemoteServers:
        for name, wrap in wrappers.items():
            setattr(link, name, wrap(getattr(link, name)))
        return link

    return hook


@dataclass(frozen=True)
class Driven:
    """A round after the clients' stages, driven in process: S0's half (`opened.server`: what S0 holds) and the
    clients the driver rejected."""

    opened: OpenRound
    transport: InProcessTransport
    meter: CostMeter
    rejected: list
    dropouts: DropoutSchedule

    def finish(self, second_server: RemoteServers) -> Output:
        """The round's end, S0's half run with `second_server` as its link to S1 and the dealer."""
        return self.opened.finish(RoundEnd(self.meter, self.transport, self.rejected, {}, self.dropouts, second_server=second_server))


def drive_clients(s0: TwoServerRobust, x: np.ndarray, seed: int, *, identities: Identities | None = None, clients: TwoServerRobust | None = None,
                  roles: Callable | None = None, dropouts: DropoutSchedule | None = None, tamper=None, wire=None) -> Driven:
    """The clients' stages of a round of x's rows (client i: row i, position i) drawn from `seed` as `secure_sum` draws
    it, S0 being `s0` (its second server already set), seated with `identities`' directory (default: simulated
    client keys). `clients`: the clients' protocol object (default `s0`); `roles(opened)`: the client roles instead
    (S0's own clients beside honest ones); `tamper` / `wire`: the transport's hooks (a compromised client, the network)."""
    clients = s0 if clients is None else clients
    n, d = x.shape
    rng = SeededRandomness(seed)
    transport = InProcessTransport(n, rng.fork("links"), tamper=tamper, wire=wire)
    dropouts = dropouts or DropoutSchedule()
    opened = s0.open_round(n, d, rng)
    opened.seat(list(range(n)), KeyDirectory() if identities is None else identities.directory)
    if roles is None:
        identity = ClientIdentity.simulated if identities is None else identities.identity
        parties = [clients.client_role(i, x[i], opened.public, rng.fork(f"client {i}"), {}, identity=identity(i)) for i in range(n)]
    else:
        parties = roles(opened)
    meter = CostMeter(n)
    return Driven(opened, transport, meter, drive(opened.server, parties, opened.stages, dropouts, transport, meter), dropouts)


def split_round(s0: TwoServerRobust, x: np.ndarray, seed: int, *, s1: TwoServerRobust | None = None, key: X25519Agreement | None = None,
                identities: Identities | None = None, clients: TwoServerRobust | None = None, held: Callable | None = None,
                s1_public: Callable[[dict], dict] | None = None, link_hook: Callable | None = None, **driving) -> Output:
    """One round (`drive_clients`, whose keywords `driving` takes), then S0's half of the servers' program with S1
    running `s1`'s configuration (default `s0`) under its round key `key` (default a fresh one) behind `in_process`.

    `identities`: S1's round key signed, the clients pinned to it and signing (default: the key unsigned, simulated
    client keys). `held(opened, rejected)`: runs after the clients' stages, before S0 relays anything (S0 rewriting
    what it holds); `s1_public(public)`: the public parameters S0 states to S1 (the clients saw `opened.public`);
    `link_hook(link, public)`: S0's link to S1 and the dealer, rewritten."""
    key = key or X25519Agreement.generate(SystemRandomness())
    clients = s0 if clients is None else clients
    if identities is None:
        s0.use_second_server(key.public_bytes())
    else:
        s0.use_second_server(key.public_bytes(), identities.signature(key), identities.round_number)
        clients.pin_second_server(identities.pin)
    driven = drive_clients(s0, x, seed, identities=identities, clients=clients, **driving)
    if held is not None:
        held(driven.opened, driven.rejected)
    public = driven.opened.public if s1_public is None else s1_public(dict(driven.opened.public))
    link = in_process(s0 if s1 is None else s1, public, key, SystemRandomness(), driven.meter, None if identities is None else identities.share_keys)
    link = link if link_hook is None else link_hook(link, public)
    return driven.finish(link)
