"""The server state machine of SecAgg / SecAgg+.

The server relays keys and encrypted shares, adds masked inputs into one accumulator as they
arrive (memory O(d + n*k), not O(n*d)), and at unmasking reconstructs, for every survivor u, its
self-mask seed b_u (checked against u's SHA-256 commitment) and, for every client v that dropped
after sharing, its mask key s_sk_v (checked against the advertised s_pk_v); then it removes
PRG(b_u) and the masks v left in its surviving neighbours' inputs. Any stage with fewer than t + 1
live clients, or a secret with fewer than t shares, aborts with `BelowThreshold` before anything
is unmasked. A recipient whose encrypted share from v fails to authenticate keeps the pair's mask, holds no
share of v and says so at unmasking (`unreadable`: the pair's channel key is symmetric, so the server cannot
tell which of the two is at fault, and excludes neither); v's secrets then need t of its other shares.
Reconstruction is robust (`protocols.masking.recovery`): a share that fails the check is dropped
and its holder recorded in `bad_shares`; only a secret left without t good shares (among those the
search reaches) aborts with `Aborted`. No aggregate leaves a failed round. Who is named: a share out of the field
names its holder alone (an honest holder treats such a share as unreadable at receipt and never reveals it); a share
in the field but off the uniquely decoded polynomial names the pair, dealer -> holder (`off_polynomial`), since the
dealer can seal its honest holder any share under their channel key and the holder cannot tell it from a good one.

An advertisement that reuses a key or carries a low-order X25519 key (c or s: every neighbour's key agreement would
refuse it and the neighbour abort) is refused (`MalformedMessage`) before anything of it is recorded or relayed: its
sender is excluded, the round goes on.

The graph is built once, at the close of ADVERTISE_KEYS (inside the server's metered handlers):
from the drawn graph seed, or against an active server from the signed advertisements.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from protocols.core.errors import Aborted, BelowThreshold, MalformedMessage, ReplayedMessage
from protocols.core.messages import Kind, parse_vector
from protocols.core.schedule import Stage
from protocols.core.wire import SERVER, Frame, Reader, Writer, decode_frame, encode_frame
from protocols.masking.graph import HararyGraph
from protocols.masking.messages import (
    COMMITMENT_BYTES,
    SHARE_CIPHERTEXT_BYTES,
    Secret,
    key_entry_bytes,
    parse_unmask_reply,
)
from protocols.masking.recovery import robust_reconstruct
from protocols.masking.setup import PAIRWISE_MASK_DOMAIN, SELF_MASK_DOMAIN, RoundSetup, mask_sign
from secagg import field
from secagg.agreement import X25519Agreement, is_low_order
from secagg.errors import InvalidTag
from secagg.prg import AesCtrPrg
from secagg.signatures import SIGNATURE_BYTES, verify

_EXPECTED = {
    Stage.ADVERTISE_KEYS: Kind.ADVERTISE,
    Stage.SHARE_KEYS: Kind.SHARES,
    Stage.MASKED_INPUT: Kind.VECTOR,
    Stage.CONSISTENCY_CHECK: Kind.SIGNATURE,
    Stage.UNMASKING: Kind.UNMASK_SHARES,
}
_REQUEST = {
    Stage.ADVERTISE_KEYS: Kind.REQUEST,
    Stage.SHARE_KEYS: Kind.KEYS,
    Stage.MASKED_INPUT: Kind.RELAYED_SHARES,
    Stage.CONSISTENCY_CHECK: Kind.SURVIVORS,
    Stage.UNMASKING: Kind.UNMASK_REQUEST,
}
PARTY = "server"


class BadShares(MalformedMessage):
    """Unmasking shares the server dropped, with whom they name: `holder` alone (its shares were out of the field, which
    an honest holder refuses at receipt) or `pairs` (dealer, holder) whose in-field share was off the recovered
    polynomial (either end may be at fault)."""

    def __init__(self, msg: str, *, party: str, stage: str, holder: int | None = None, pairs: tuple[tuple[int, int], ...] = ()) -> None:
        super().__init__(msg, party=party, stage=stage)
        self.holder, self.pairs = holder, pairs


class MaskingServer:
    """The server of one round; once the keys are in, `neighbours[i]` is client i's neighbour set (public)
    and `graph_seed` the seed it came from."""

    def __init__(self, setup: RoundSetup, pki: list[bytes] | None = None) -> None:
        """`pki`: active mode's verification key of each position; a split round supplies it later (`seat`)."""
        self.setup, self._pki = setup, pki
        self.neighbours: list[frozenset[int]] = []
        self.graph_seed = setup.graph_seed
        self.bad_shares: dict[int, set[int]] = {}  # holder -> owners whose share from it failed the check
        self.off_polynomial: dict[int, set[int]] = {}  # owner (dealer) -> holders whose in-field share of it was off the polynomial
        self.unreadable: dict[int, set[int]] = {}  # sender -> recipients reporting its encrypted share failed to authenticate
        self._stage = Stage.ADVERTISE_KEYS
        self._live: set[int] = set(range(setup.n))  # clients that answered the previous stage
        self._received: dict[int, object] = {}  # this stage's parsed replies, by sender
        self._keys: dict[int, bytes] = {}
        self._seen_keys: set[bytes] = set()
        self._inbox: dict[int, dict[int, bytes]] = {}
        self._commitments: dict[int, bytes] = {}
        self._shared: set[int] = set()  # U2
        self._survivors: list[int] = []  # U3
        self._acc = setup.ring.zeros(setup.d)
        self._done = False

    def seat(self, roster: bytes, pki: list[bytes]) -> None:
        """Active mode: the roster digest (`protocols.core.pki.roster_digest`) signed into every signature, and each
        position's verification key; only before the round starts.

        Raises:
            ValueError: once a frame was received, or for a pki that is not one key a client.
        """
        if self._received or self._keys or self._stage != Stage.ADVERTISE_KEYS:
            raise ValueError("the roster is seated before the round starts")
        if len(pki) != self.setup.n:
            raise ValueError(f"pki must hold n={self.setup.n} keys, found {len(pki)}")
        self.setup, self._pki = replace(self.setup, roster=roster), list(pki)

    def requests(self) -> dict[int, bytes]:
        """The frames this stage sends, by recipient.

        Raises:
            ValueError: in active mode before the clients' keys are known (`seat`).
        """
        setup, stage = self.setup, self._stage
        if setup.active and self._pki is None:
            raise ValueError("active mode needs the signing public keys of all clients (pki): seat the roster first")
        payloads: dict[int, bytes] = {}
        everyone = {v: self._keys[v] for v in self._live} if stage == Stage.SHARE_KEYS and setup.derives_graph else None
        for u in sorted(self._live):
            if stage == Stage.ADVERTISE_KEYS:
                payloads[u] = Writer().u8(stage).getvalue()
            elif stage == Stage.SHARE_KEYS:
                listed = everyone if everyone is not None else {v: self._keys[v] for v in self.neighbours[u] & self._live}
                payloads[u] = Writer().entries(listed).getvalue()
            elif stage == Stage.MASKED_INPUT:
                payloads[u] = Writer().entries({v: c for v, c in self._inbox.get(u, {}).items() if v in self._live}).getvalue()
            elif stage == Stage.CONSISTENCY_CHECK:
                payloads[u] = Writer().ids(self._survivors).getvalue()
            elif setup.active:
                signed = {v: s for v, s in self._signatures.items() if v in self.neighbours[u]}
                payloads[u] = Writer().ids(self._survivors).entries(signed).getvalue()
            else:
                payloads[u] = Writer().ids(sorted((self.neighbours[u] | {u}) & set(self._survivors))).getvalue()
        kind = _REQUEST[stage]
        return {u: encode_frame(Frame(kind, setup.session, SERVER, u, p)) for u, p in payloads.items()}

    def receive(self, data: bytes, link: int) -> None:
        """Parses and records one client frame that arrived on client `link`'s authenticated link.

        Raises:
            MalformedMessage: for bytes that do not parse, a wrong session, stage or sender, or bad contents.
            ReplayedMessage: for a second frame from one sender in this stage (the first one stands).
        """
        stage = self._stage
        frame = decode_frame(data, party=PARTY, stage=stage.name)
        if frame.session != self.setup.session or frame.recipient != SERVER or frame.kind != _EXPECTED[stage]:
            raise MalformedMessage(f"frame of kind {frame.kind} not expected", party=PARTY, stage=stage.name)
        u = frame.sender
        if u != link:
            raise MalformedMessage(f"frame claims sender {u} on client {link}'s link", party=PARTY, stage=stage.name)
        if u not in self._live:
            raise MalformedMessage(f"client {u} is not live at this stage", party=PARTY, stage=stage.name)
        if u in self._received:
            raise ReplayedMessage(f"second frame from client {u}", party=PARTY, stage=stage.name)
        r = Reader(frame.payload, party=PARTY, stage=stage.name)
        try:
            parsed = getattr(self, f"_parse_{stage.name.lower()}")(u, r)
        except InvalidTag as exc:
            raise MalformedMessage(f"client {u}: {exc}", party=PARTY, stage=stage.name) from exc
        r.done()
        self._received[u] = parsed

    def _parse_advertise_keys(self, u: int, r: Reader) -> bytes:
        raw = r.raw(key_entry_bytes(self.setup.active))
        r.done()  # before anything is recorded: a refused frame's keys must not reach the graph seed (review 8)
        if raw[:32] == raw[32:64] or {raw[:32], raw[32:64]} & self._seen_keys:
            raise r.fail("public key reused")
        low = [f"{name}_pk={key.hex()}" for name, key in (("c", raw[:32]), ("s", raw[32:64])) if is_low_order(key)]
        if low:  # every neighbour's key agreement would refuse it and the neighbour abort: refused here, its sender excluded
            raise r.fail(f"low-order X25519 key {', '.join(low)}")
        if self.setup.active:
            verify(self._pki[u], raw[64:], self.setup.advertise_message(u, raw[:32], raw[32:64]))
        self._keys[u] = raw
        self._seen_keys |= {raw[:32], raw[32:64]}
        return raw

    def _parse_share_keys(self, u: int, r: Reader) -> tuple[bytes, dict[int, bytes]]:
        commitment = r.raw(COMMITMENT_BYTES)
        ciphertexts = r.entries(SHARE_CIPHERTEXT_BYTES, self.setup.n, self.setup.n)
        if ciphertexts.keys() != self.neighbours[u] & self._live:  # what an honest client sends: one a neighbour whose keys it got
            raise r.fail("shares not for exactly its live neighbours (one left out would leave a pair mask no recipient holds a share for)")
        return commitment, ciphertexts

    def _parse_masked_input(self, u: int, r: Reader) -> None:
        y = parse_vector(r, self.setup.ring, self.setup.d)
        self.setup.ring.add(self._acc, y, out=self._acc)  # added on arrival: no O(n*d) buffer

    def _parse_consistency_check(self, u: int, r: Reader) -> bytes:
        signature = r.raw(SIGNATURE_BYTES)
        verify(self._pki[u], signature, self.setup.consistency_message(self._survivors, self._keys[u][:64]))
        return signature

    def _parse_unmasking(self, u: int, r: Reader) -> tuple[dict[int, tuple[Secret, np.ndarray]], set[int]]:
        shares, unreadable = parse_unmask_reply(r, self.setup.n)
        survivors = set(self._survivors)
        for v in unreadable:
            if v not in self.neighbours[u] or v not in self._shared:
                raise r.fail(f"share of client {v} reported unreadable, not a neighbour that shared")
        for v, (kind, share) in shares.items():
            if v not in self.neighbours[u] or v not in self._shared:
                raise r.fail(f"share of client {v}, not a neighbour that shared")
            if kind != (Secret.SELF_MASK_SEED if v in survivors else Secret.MASK_KEY):
                raise r.fail(f"wrong secret kind for client {v}")
        return shares, unreadable

    def close(self) -> None:
        """Ends the current stage.

        Raises:
            BelowThreshold: if fewer than t + 1 clients answered, or a secret lacks t shares.
            Aborted: if no t of a secret's shares pass its commitment (or public key) check.
        """
        stage, t = self._stage, self.setup.t
        answered = set(self._received)
        if len(answered) < t + 1:
            raise BelowThreshold(f"{len(answered)} clients answered < t + 1 = {t + 1}", party=PARTY, stage=stage.name)
        if stage == Stage.ADVERTISE_KEYS:
            if self.setup.active:
                self.graph_seed = self.setup.graph_seed_from(self._keys)
            self.neighbours = HararyGraph(self.setup.n, self.setup.k, self.graph_seed).all()
        elif stage == Stage.SHARE_KEYS:
            for u, (commitment, ciphertexts) in self._received.items():
                self._commitments[u] = commitment
                for v, c in ciphertexts.items():
                    self._inbox.setdefault(v, {})[u] = c
            self._shared = answered
        elif stage == Stage.MASKED_INPUT:
            self._survivors = sorted(answered)
            self._inbox.clear()
        elif stage == Stage.CONSISTENCY_CHECK:
            self._signatures = dict(self._received)
        elif stage == Stage.UNMASKING:
            for u, (_, unreadable) in self._received.items():
                for v in unreadable:
                    self.unreadable.setdefault(v, set()).add(u)
            self._unmask({u: shares for u, (shares, _) in self._received.items()})
        self._live, self._received = answered, {}
        following = [s for s in Stage if s > stage and (self.setup.active or s != Stage.CONSISTENCY_CHECK)]
        self._stage = following[0] if following else stage

    def _reconstruct(self, owner: int, kind: Secret, responses: dict, check: Callable[[bytes], bool]) -> bytes:
        holders = sorted(w for w, shares in responses.items() if owner in shares)
        if len(holders) < self.setup.t:
            unread = f" (clients {sorted(self.unreadable[owner])} report its share to them failed to authenticate)" if owner in self.unreadable else ""
            raise BelowThreshold(
                f"{len(holders)} shares of client {owner}'s {kind.name} < t={self.setup.t}{unread}", party=PARTY, stage="UNMASKING"
            )
        shares = np.stack([responses[w][owner][1] for w in holders])
        secret, bad = robust_reconstruct(holders, shares, self.setup.t, check, suspects=self.bad_shares.keys())
        for w in bad:
            self.bad_shares.setdefault(w, set()).add(owner)
            if np.all(responses[w][owner][1] < field.P):  # in the field: the dealer may have sealed it so (the holder cannot tell)
                self.off_polynomial.setdefault(owner, set()).add(w)
        if secret is None:
            raise Aborted(
                f"no {self.setup.t} of the {len(holders)} shares of client {owner}'s {kind.name} pass its check", party=PARTY, stage="UNMASKING"
            )
        return secret

    def _unmask(self, responses: dict) -> None:
        survivors = set(self._survivors)
        seeds = {}
        for u in self._survivors:
            seeds[u] = self._reconstruct(u, Secret.SELF_MASK_SEED, responses, lambda seed, u=u: self.setup.commitment(u, seed) == self._commitments[u])
        dropped = {}
        for v in sorted(self._shared - survivors):
            if not self.neighbours[v] & survivors:
                continue
            secret = self._reconstruct(v, Secret.MASK_KEY, responses, lambda key, v=v: _public_key(key) == self._keys[v][32:64])
            dropped[v] = X25519Agreement.from_private_bytes(secret)
        streams = [(seeds[u], SELF_MASK_DOMAIN, -1) for u in self._survivors]
        for v, key in dropped.items():
            streams += [(key.shared_seed(self._keys[u][32:64], self.setup.pair_context(PAIRWISE_MASK_DOMAIN, u, v)), PAIRWISE_MASK_DOMAIN, -mask_sign(u, v))
                        for u in sorted(self.neighbours[v] & survivors)]
        AesCtrPrg(self.setup.ring).add_streams(self._acc, streams)
        self._done = True

    def result(self) -> tuple[np.ndarray, tuple[int, ...]]:
        """The unmasked sum mod 2**b and the clients it includes (U3). Only after a completed round."""
        if not self._done:
            raise BelowThreshold("the round did not complete", party=PARTY, stage=self._stage.name)
        return self._acc, tuple(self._survivors)


def _public_key(private: bytes) -> bytes:
    return X25519Agreement.from_private_bytes(private).public_bytes()
