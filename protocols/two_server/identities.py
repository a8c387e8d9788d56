"""Long-term Ed25519 identities of the second server S1, the dealer and the clients, so that S0, which relays every
frame between them, can neither name its own key as S1's to the dealer or to a client, nor deal a batch itself, nor
seal an input of its own to S1 under a client's name.

    round key   S1 signs "secagg/two-server/round-key" | run | "|" | round | "|" | K   (run, round: decimal; K: its
                fresh X25519 round key); the dealer seals S1's half, and a client its S1 share, only to a K whose
                signature verifies under S1's key from its own configuration (node config `second-server-key`),
                never one S0 sends. A client checks the run and the round it joined (`RoundKeyPin`): another run's
                or round's signed key is refused; the dealer checks the run and the round S0 states.
    batch       the dealer signs "secagg/two-server/dealer-batch" | ad | K | SHA-256(sealed) (ad: session, sender,
                kind, index, `sealing.associated_data`) and appends the 64-byte signature to the sealed batch;
                S1 verifies it under the dealer's key from its own configuration (`dealer-key`) and aborts the
                round on an unsigned or other batch before opening it.
    share       client c at roster position u signs "secagg/two-server/client-share" | run | "|" | round | "|" | ad | c (u32)
                | roster digest | K | SHA-256(sealed) with its long-term key (`protocols.core.pki`; ad: session, position
                u, S1, kind SHARE_VECTOR, `sealing.associated_data`; run, round: the ones its pin checked K for); S1
                verifies it, before opening the share, under the key its OWN directory (node config `client-keys`)
                holds for roster[u] and its own run, round and K, the roster (S0's word) checked like pki's: n ids
                (the length first), each in [0, 2**32), none twice, none without a key (`ShareKeys`). A share with a bad, missing or replayed signature excludes
                its client (another round, run, position, roster or S1 key changes the message).

Keys come from `protocols.core.pki.provision` (keys/second-server.pem, second-server.pub, keys/dealer.pem,
dealer.pub, keys/<id>.pem, clients/<id>.pub). In process and in simulation every identity is simulated: derived
publicly from a name or an id (`simulated_signer`, `pki.simulated_signer`), so anyone can sign as S1, the dealer or any
client; the guarantee then holds against no one.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field

from protocols.core.errors import MalformedMessage, Refused
from protocols.core.pki import SIMULATED as SIMULATED_CLIENTS
from protocols.core.pki import KeyDirectory, roster_digest
from protocols.core.wire import hex_bytes
from secagg.errors import InvalidTag
from secagg.signatures import Signer, verify

SIGNATURE_BYTES = 64
SIMULATED = "simulated (S1's and the dealer's signing keys derived publicly: anyone can sign as them; a simulation only)"


def simulated_signer(role: str) -> Signer:
    """The simulated signing key of `role` ("second-server" or "dealer"): Ed25519 seed SHA-256("secagg/simulated-" | role)."""
    return Signer.from_private_bytes(hashlib.sha256(b"secagg/simulated-" + role.encode()).digest())


def round_key_message(run: int, key: bytes, round_number: int = 0) -> bytes:
    return b"secagg/two-server/round-key" + str(int(run)).encode() + b"|" + str(int(round_number)).encode() + b"|" + bytes(key)


def batch_message(ad: bytes, key: bytes, sealed: bytes) -> bytes:
    return b"secagg/two-server/dealer-batch" + ad + bytes(key) + hashlib.sha256(sealed).digest()


def check_round_key(s1_public: bytes, run: int, key: bytes, signature: bytes, round_number: int = 0) -> None:
    """Raises ValueError unless `signature` is S1's (verification key `s1_public`) over round key `key` in run `run`, round `round_number`."""
    try:
        verify(s1_public, bytes(signature), round_key_message(run, key, round_number))
    except InvalidTag:
        raise ValueError(f"second-server key {bytes(key).hex()[:16]}... is not signed by the second server for run {run}, "
                         f"round {round_number}: refusing to seal to it") from None


@dataclass(frozen=True)
class RoundKeyPin:
    """What a client checks S1's round key against before it seals to it, all from its own side: S1's Ed25519
    verification key (deployment: node config `second-server-key`; simulation: `simulated_signer`), the run and the
    round it joined (never S0's word for them)."""

    s1_public: bytes
    run: int
    round_number: int

    def check(self, key: bytes, signature: object, *, party: str) -> None:
        """Raises Refused (naming `party`, stage "share") unless `signature` (hex, as S0 relays it in the public
        parameters: untrusted, any type) is S1's over `key` for this run and round."""
        raw = hex_bytes(signature, SIGNATURE_BYTES) or b""
        try:
            check_round_key(self.s1_public, self.run, key, raw, self.round_number)
        except ValueError as exc:
            raise Refused(str(exc), party=party, stage="share") from None


def check_batch(dealer_public: bytes, ad: bytes, key: bytes, signed: bytes) -> bytes:
    """The sealed batch inside `signed` (sealed || signature) if the dealer signed it for `ad` and S1's key `key`.

    Raises:
        ValueError: if it is short or the signature does not verify under `dealer_public`.
    """
    if len(signed) < SIGNATURE_BYTES:
        raise ValueError(f"dealer batch shorter than its {SIGNATURE_BYTES}-byte signature")
    sealed, signature = signed[:-SIGNATURE_BYTES], signed[-SIGNATURE_BYTES:]
    try:
        verify(dealer_public, signature, batch_message(ad, key, sealed))
    except InvalidTag:
        raise ValueError("the dealer batch signature failed authentication: not the dealer's for this session, index and second server") from None
    return sealed


def share_message(run: int, round_number: int, ad: bytes, cid: int, roster: bytes, key: bytes, sealed: bytes) -> bytes:
    """What client `cid` signs over the share it sealed to S1's round key `key` (`roster`: `pki.roster_digest`)."""
    return (b"secagg/two-server/client-share" + str(int(run)).encode() + b"|" + str(int(round_number)).encode() + b"|" + ad
            + struct.pack(">I", cid) + roster + bytes(key) + hashlib.sha256(sealed).digest())


@dataclass(frozen=True)
class ShareKeys:
    """What S1 checks each client's signed share against, all from its own side: the clients' verification keys
    (deployment: its node config `client-keys`; in process and in simulation `KeyDirectory()`, simulated), and the
    run and round it signed its round key for. The roster (position -> client id) is S0's word, checked by `seat`."""

    directory: KeyDirectory = field(default_factory=KeyDirectory)
    run: int = 0
    round_number: int = 0

    def seat(self, roster: object, n: int, *, party: str) -> SeatedShares:
        """The verifier of a round of n positions whose roster S0 states (untrusted: any JSON value).

        Raises:
            Refused: (naming `roster`) unless it is a list of n distinct client ids in [0, 2**32), each with a key in
                the directory (`KeyDirectory.for_roster`).
        """
        try:
            keys = self.directory.for_roster(roster, n, party=party, stage="setup")
        except Refused as exc:  # named for the field: what S0 stated
            raise Refused(f"roster refused: {str(exc).removeprefix(f'{party} at setup: ')}", party=party, stage="setup") from None
        return SeatedShares(self, tuple(roster), tuple(keys))

    @property
    def simulated(self) -> bool:
        return self.directory.source == SIMULATED_CLIENTS


@dataclass(frozen=True)
class SeatedShares:
    """`ShareKeys` for one round's roster: position u is client roster[u] with key keys[u]."""

    owner: ShareKeys
    roster: tuple[int, ...]
    keys: tuple[bytes, ...]

    def check(self, u: int, ad: bytes, key: bytes, signature: bytes, sealed: bytes, *, stage: str) -> None:
        """Raises MalformedMessage (naming client u) unless `signature` is client roster[u]'s over `sealed` (`share_message`)."""
        message = share_message(self.owner.run, self.owner.round_number, ad, self.roster[u], roster_digest(self.roster), key, sealed)
        try:
            verify(self.keys[u], bytes(signature), message)
        except InvalidTag:
            raise MalformedMessage(f"the sealed share's signature is not client id {self.roster[u]}'s for run {self.owner.run}, "
                                   f"round {self.owner.round_number}, this position, roster and second-server key",
                                   party=f"client {u}", stage=stage) from None
