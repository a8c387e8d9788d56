"""The second server S1 and the dealer away from S0 (their own Flower nodes, say): S0 relays every frame.

S0 runs its half of the servers' program (`TwoServerRobust.servers` with `Channel(here=S0)`) with a
`RemoteServers` link in `RoundEnd.second_server`: a frame for S1 waits in S0's outbox; when S0 needs S1's
next frame it hands S1 the frames it has not seen (`ask`), and a dealer batch is one request to the dealer
(`deal`), whose reply is S0's seed and S1's part sealed to S1 (`sealed_deal`), which S0 relays.

S1 keeps no Python object between messages: `second_server_step` replays S1's program from the start over
every frame S0 has relayed this round (deterministic given them and S1's key) until it needs one more
(`Blocked`) or finishes, and returns every frame it has sent; the caller passes on the new ones. The dealer
answers each request on its own (`sealed_deal`), from its own randomness.

The dealer is its own party, not S1 nor S0: a dealer inside S1 would know A, and E = X - A, which S1 sees
opened, would give S1 every input.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from protocols.core.driver import CostMeter
from protocols.core.errors import Aborted, ProtocolError
from protocols.core.wire import DEALER
from protocols.two_server import dealer
from protocols.two_server.channel import S0, S1, Channel, encode_matrix
from protocols.two_server.identities import ShareKeys, batch_message, check_round_key, round_key_message, simulated_signer
from protocols.two_server.sealing import associated_data, seal
from secagg.agreement import X25519Agreement
from secagg.randomness import Randomness, SystemRandomness
from secagg.signatures import Signer


def two_server_public(public: dict) -> dict:
    """The two-server protocol's public parameters inside a stack's (each transform layer nests its inner's).

    Raises:
        TypeError: if there are none.
    """
    while "second_server" not in public:
        if not isinstance(public.get("inner"), dict):
            raise TypeError("these public parameters carry no two-server round")
        public = public["inner"]
    return public


class Blocked(Exception):
    """S1's program needs a frame S0 has not relayed yet."""


class _Replay:
    """S1's link while its program is replayed over the frames S0 relayed so far."""

    def __init__(self, inbound: list[bytes]) -> None:
        self.inbound, self.at, self.sent = inbound, 0, []

    def post(self, dst: int, frame: bytes) -> None:
        if dst != S0:
            raise ValueError(f"the second server only sends to the first server, found recipient {dst}")
        self.sent.append(frame)

    def fetch(self, src: int) -> bytes:
        if self.at == len(self.inbound):
            raise Blocked
        self.at += 1
        return self.inbound[self.at - 1]


@dataclass(frozen=True)
class SecondServerStep:
    frames: list[bytes]  # every frame S1 has sent S0 this round, in order
    done: bool  # S1's program finished (it sent its share of the result, or stopped with `error`)
    seconds: float  # S1's CPU seconds in its program up to here
    error: str | None = None  # why S1 stopped the round (typed error and message)


def second_server_step(protocol, public: dict, key: X25519Agreement, inbound: list[bytes], dealer_key: bytes | None = None,
                       clients: ShareKeys | None = None) -> SecondServerStep:
    """S1's half of a round of `protocol` (its own configuration), replayed over every frame S0 relayed (`inbound`).

    `public` is the round's two-server public parameters (`two_server_public`); they must carry S1's own key and
    agree with S1's configuration, and their roster must seat distinct clients of `clients`' directory, or S1 stops
    the round (`error`). S1 opens only dealer batches signed under `dealer_key` (the dealer's Ed25519 key from S1's
    own configuration; None: the simulated dealer's) and client shares signed for `clients`' run and round under the
    key its directory holds for the client the roster seats there (S1's own `client-keys`; None: simulated, run 0, round 0).
    """
    meter = CostMeter(1)
    link = _Replay(inbound)
    try:
        n, d = protocol.check_public(public, "second server")
        if bytes.fromhex(public["second_server"]) != key.public_bytes():
            raise Aborted("the public parameters carry another second-server key than this server's", party="second server", stage="setup")
        shares = (clients or ShareKeys()).seat(public.get("roster"), n, party="second server")
        ch = Channel(None, meter, bytes.fromhex(public["session"]), here=S1, link=link, key=key,
                     dealer_key=dealer_key or simulated_signer("dealer").public_bytes(), shares=shares)
        protocol.servers(ch, n, d, None, None, [], SystemRandomness())
    except Blocked:
        return SecondServerStep(link.sent, False, meter.party_seconds.get("second server", 0.0))
    except (ProtocolError, ValueError) as exc:
        return SecondServerStep(link.sent, True, meter.party_seconds.get("second server", 0.0), f"{type(exc).__name__}: {exc}")
    return SecondServerStep(link.sent, True, meter.party_seconds.get("second server", 0.0))


def sealed_deal(kind: str, args, index, public: dict, rng: Randomness, *, signer: Signer | None = None,
                s1_public: bytes | None = None, run: int = 0) -> tuple[bytes, bytes]:
    """The dealer's answer to one request of S0: S0's seed, and S1's matrices sealed to the second-server key of
    `public`, bound to the session and the batch `index`, followed by the dealer's signature (`identities`).
    The dealer seals only to a round key that `public["second_server_signature"]` proves S1's for run `run` and the
    round `public["second_server_round"]` states (default 0), under `s1_public` (S1's Ed25519 key from the dealer's
    own configuration); `signer` is the dealer's own identity. None: the simulated ones (`identities.simulated_signer`).

    Raises:
        ValueError: for a request of an unknown kind, bad shapes (`dealer.parts`), a bad index, or a
            second-server key S1 did not sign.
    """
    if type(index) is not int or index < 0:
        raise ValueError(f"dealer batch index must be a non-negative int, found {index!r}")
    key = bytes.fromhex(public["second_server"])
    stated = public.get("second_server_round", 0)  # S0's word: the dealer keeps no round of its own
    if type(stated) is not int:
        raise ValueError(f"public parameter second_server_round={stated!r} is not an int")
    check_round_key(s1_public or simulated_signer("second-server").public_bytes(), run, key,
                    bytes.fromhex(str(public.get("second_server_signature", ""))), stated)
    seed, parts = dealer.deal(kind, tuple(args), rng)
    ad = associated_data(bytes.fromhex(public["session"]), DEALER, dealer.message(kind), index)
    sealed = seal(key, b"".join(encode_matrix(p) for p in parts), ad, rng)
    return seed, sealed + (signer or simulated_signer("dealer")).sign(batch_message(ad, key, sealed))


class RemoteServers:
    """S0's link to a remote S1 (`ask(new frames) -> (S1's new frames, error or None)`) and dealer
    (`deal(kind, args, index) -> (seed, sealed)`), for `RoundEnd.second_server`.

    Raises (from `fetch`):
        Aborted: if S1 stopped the round.
    """

    def __init__(self, ask: Callable[[list[bytes]], tuple[list[bytes], str | None]], deal: Callable[[str, tuple, int], tuple[bytes, bytes]]) -> None:
        self._ask, self.deal = ask, deal
        self._outbox: list[bytes] = []
        self._inbox: deque[bytes] = deque()

    def post(self, dst: int, frame: bytes) -> None:
        if dst != S1:
            raise ValueError(f"the first server relays only to the second server, found recipient {dst}")
        self._outbox.append(frame)

    def fetch(self, src: int) -> bytes | None:
        if src != S1:
            raise ValueError(f"the first server hears only from the second server here, found sender {src}")
        if not self._inbox:
            frames, error = self._ask(self._outbox)
            self._outbox = []
            if error is not None:
                raise Aborted(f"the second server stopped the round: {error}", party="second server", stage="two-server")
            self._inbox.extend(frames)
        return self._inbox.popleft() if self._inbox else None


def in_process(protocol, public: dict, key: X25519Agreement, rng: Randomness, meter: CostMeter | None = None,
               clients: ShareKeys | None = None) -> RemoteServers:
    """S1 (replayed, as on its own node) and the dealer in this process, behind the same link a remote engine gives S0;
    both with simulated identities (S1 signs its round key `key` for the dealer, for `clients`' run and round), S1
    checking the clients' signatures under `clients` (None: simulated client keys, run 0, round 0)."""
    public = two_server_public(public)
    clients = clients or ShareKeys()
    signature = simulated_signer("second-server").sign(round_key_message(clients.run, key.public_bytes(), clients.round_number))
    signed = {**public, "second_server_signature": signature.hex(), "second_server_round": clients.round_number}
    history: list[bytes] = []
    seen = {"frames": 0, "seconds": 0.0}

    def ask(new: list[bytes]) -> tuple[list[bytes], str | None]:
        history.extend(new)
        step = second_server_step(protocol, public, key, history, clients=clients)
        if meter is not None:
            meter.record_party("second server", max(0.0, step.seconds - seen["seconds"]))
        fresh = step.frames[seen["frames"]:]
        seen.update(frames=len(step.frames), seconds=step.seconds)
        return fresh, step.error

    def deal(kind: str, args: tuple, index: int) -> tuple[bytes, bytes]:
        if meter is None:
            return sealed_deal(kind, args, index, signed, rng, run=clients.run)
        with meter.party("dealer"):  # as the dealer's node reports its CPU on Flower
            return sealed_deal(kind, args, index, signed, rng, run=clients.run)

    return RemoteServers(ask, deal)
