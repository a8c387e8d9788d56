"""The client state machine of SecAgg / SecAgg+ (Bonawitz et al. CCS 2017, Bell et al. CCS 2020).

Stages, each a reply to one server request:
  ADVERTISE_KEYS    two fresh X25519 key pairs: c (share channel) and s (pairwise masks)
  SHARE_KEYS        (on the neighbours' keys; active SecAgg+: on every signed advertisement, whose hash keys
                    the graph) Shamir t-of-k shares of s_sk and of a self-mask seed b, one AES-GCM ciphertext per live neighbour
  MASKED_INPUT      y = x + PRG(b) + sum_v sign(u, v) PRG(s_uv) mod 2**b, over neighbours whose shares arrived
                    (a share that fails to authenticate, names another pair or is out of GF(p) is not held; its pair mask stays in)
  CONSISTENCY_CHECK (active mode) a signature of the survivor list and of this client's own keys of this round
  UNMASKING         for each neighbour v that shared with us: the share of b_v if v survived, of s_sk_v if not;
                    for each neighbour whose share failed to authenticate, an UNREADABLE report instead

An honest client never reveals both secrets of a peer: each peer gets exactly one kind of share,
and a second unmasking request is refused. Active mode: it unmasks only on t signatures of its survivor list by
neighbours whose share it holds, each checked against the keys that neighbour advertised to it this round. A share
that authenticated proves those keys are the neighbour's of this round (the channel key comes from this client's fresh
c key and the neighbour's c secret, which nobody else learns), and the signature binds them, so a signature from an
earlier round (the server may reuse a session and a roster, and replay old advertisements) is never counted: each
honest neighbour counted signed this list in this round, and it signs one list a round (review 15, break 6).
A frame of a kind the current stage does not expect (replayed, reordered) is rejected without changing state; a
malformed frame of the expected kind makes the client abort (it drops out of the round).
"""

from __future__ import annotations

import numpy as np

from protocols.core.errors import BelowThreshold, MalformedMessage, ProtocolError, Refused
from protocols.core.messages import Kind, vector_writer
from protocols.core.schedule import Stage
from protocols.core.wire import SERVER, Frame, Reader, Writer, decode_frame, encode_frame
from protocols.masking.graph import HararyGraph
from protocols.masking.messages import (
    SECRET_BYTES,
    SHARE_BYTES,
    SHARE_CIPHERTEXT_BYTES,
    Secret,
    encode_unmask_shares,
    key_entry_bytes,
)
from protocols.masking.setup import PAIRWISE_MASK_DOMAIN, SELF_MASK_DOMAIN, RoundSetup, mask_sign
from secagg import field, shamir
from secagg.aead import AuthenticatedCipher
from secagg.agreement import X25519Agreement
from secagg.errors import InvalidTag
from secagg.prg import AesCtrPrg
from secagg.randomness import Randomness
from secagg.signatures import SIGNATURE_BYTES, Signer, verify

_EXPECTED = {
    Stage.ADVERTISE_KEYS: Kind.REQUEST,
    Stage.SHARE_KEYS: Kind.KEYS,
    Stage.MASKED_INPUT: Kind.RELAYED_SHARES,
    Stage.CONSISTENCY_CHECK: Kind.SURVIVORS,
    Stage.UNMASKING: Kind.UNMASK_REQUEST,
}


class MaskingClient:
    """Client `cid` of a round, holding input `x` (ring elements); it computes its own neighbour set
    (O(n log n) vectorised on the SecAgg+ graph: the permutation, n/2 AES blocks) when the keys arrive."""

    def __init__(
        self,
        cid: int,
        setup: RoundSetup,
        x: np.ndarray,
        rng: Randomness,
        signer: Signer | None = None,
        pki: list[bytes] | None = None,
    ) -> None:
        if setup.active and (signer is None or pki is None):
            raise ValueError("active mode needs a signer and the signing public keys of all clients (pki)")
        self.cid, self.setup = cid, setup
        self._x, self._rng, self._signer, self._pki = x, rng, signer, pki
        self._stage: Stage | None = Stage.ADVERTISE_KEYS
        self.aborted = False
        self.neighbours: frozenset[int] | None = None  # computed when the keys arrive (inside the metered handler)
        self.revealed: dict[int, Secret] = {}  # peer -> the one secret whose share this client revealed
        self.unreadable: frozenset[int] = frozenset()  # neighbours whose encrypted share failed to authenticate here

    @property
    def party(self) -> str:
        return f"client {self.cid}"

    def handle(self, data: bytes) -> bytes:
        """Processes one server frame (untrusted bytes); returns the reply frame.

        Raises:
            Refused: on a second unmasking request.
            MalformedMessage: on a frame this stage does not expect (state unchanged), or a malformed one
                (the client aborts).
            BelowThreshold: when fewer than t neighbours remain (the client aborts).
        """
        frame = decode_frame(data, party=self.party, stage=self._stage.name if self._stage is not None else "done")
        if self.aborted or self._stage is None:
            if frame.kind == Kind.UNMASK_REQUEST and self.revealed:
                raise Refused("unmasking shares were already revealed this round", party=self.party, stage="unmasking")
            raise MalformedMessage("round over for this client", party=self.party, stage="done")
        stage = self._stage
        if frame.kind != _EXPECTED[stage] or frame.session != self.setup.session or frame.sender != SERVER or frame.recipient != self.cid:
            raise MalformedMessage(f"unexpected frame kind {frame.kind}", party=self.party, stage=stage.name)
        reader = Reader(frame.payload, party=self.party, stage=stage.name)
        try:
            kind, payload = getattr(self, f"_on_{stage.name.lower()}")(reader)
        except (ProtocolError, InvalidTag) as exc:
            self.aborted = True
            if isinstance(exc, ProtocolError):
                raise
            raise MalformedMessage(str(exc), party=self.party, stage=stage.name) from exc
        return encode_frame(Frame(kind, self.setup.session, self.cid, SERVER, payload))

    def _on_advertise_keys(self, r: Reader) -> tuple[Kind, bytes]:
        if r.u8() != Stage.ADVERTISE_KEYS:
            raise r.fail("request for another stage")
        r.done()
        self._c = X25519Agreement.generate(self._rng)
        self._s = X25519Agreement.generate(self._rng)
        c_pk, s_pk = self._c.public_bytes(), self._s.public_bytes()
        payload = c_pk + s_pk
        if self.setup.active:
            payload += self._signer.sign(self.setup.advertise_message(self.cid, c_pk, s_pk))
        self._stage = Stage.SHARE_KEYS
        return Kind.ADVERTISE, payload

    def _on_share_keys(self, r: Reader) -> tuple[Kind, bytes]:
        setup = self.setup
        entries = r.entries(key_entry_bytes(setup.active), setup.n, setup.n)
        r.done()
        seed = setup.graph_seed
        if setup.derives_graph:  # every advertisement, signed: the graph is their hash, not the server's choice
            if entries.get(self.cid, b"")[:64] != self._c.public_bytes() + self._s.public_bytes():
                raise r.fail("this client's own advertisement is missing from the key list")
            seed = setup.graph_seed_from(entries)
        self.neighbours = HararyGraph(setup.n, setup.k, seed).neighbours(self.cid)
        if not setup.derives_graph and not entries.keys() <= self.neighbours:
            raise r.fail("keys of clients that are not neighbours")
        self._keys = {}
        for v, raw in entries.items():
            c_pk, s_pk = raw[:32], raw[32:64]
            if setup.active:
                verify(self._pki[v], raw[64:], setup.advertise_message(v, c_pk, s_pk))
            if v in self.neighbours:
                self._keys[v] = (c_pk, s_pk)
        if len(self._keys) < setup.t:
            raise BelowThreshold(f"{len(self._keys)} live neighbours < t={setup.t}", party=self.party, stage="share_keys")
        self._seed = self._rng.bytes(SECRET_BYTES)
        peers = sorted(self._keys)
        points = [v + 1 for v in peers]
        key_shares = shamir.share(shamir.bytes_to_field(self._s.private_bytes()), points, setup.t, rng=self._rng)
        seed_shares = shamir.share(shamir.bytes_to_field(self._seed), points, setup.t, rng=self._rng)
        ciphertexts = {}
        self._channels = {}  # one AES-GCM key a neighbour pair, for both directions
        for j, v in enumerate(peers):
            plaintext = Writer().u32(self.cid).u32(v).raw(key_shares[j].astype(">u8").tobytes()).raw(seed_shares[j].astype(">u8").tobytes()).getvalue()
            self._channels[v] = AuthenticatedCipher(self._c.shared_seed(self._keys[v][0], setup.pair_context(b"share-channel", self.cid, v)))
            ciphertexts[v] = self._channels[v].encrypt(plaintext, setup.share_associated_data(self.cid, v), rng=self._rng)
        self._stage = Stage.MASKED_INPUT
        return Kind.SHARES, Writer().raw(setup.commitment(self.cid, self._seed)).entries(ciphertexts).getvalue()

    def _on_masked_input(self, r: Reader) -> tuple[Kind, Writer]:
        setup = self.setup
        entries = r.entries(SHARE_CIPHERTEXT_BYTES, setup.n, setup.n)
        r.done()
        if not entries.keys() <= self._channels.keys():
            raise r.fail("shares from clients this client did not share with")
        self._masked = frozenset(entries)  # neighbours whose ciphertext arrived: their pair masks go into y
        self._held: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for v, ciphertext in entries.items():
            share = self._open_share(v, ciphertext)
            if share is not None:
                self._held[v] = share
        self.unreadable = self._masked - self._held.keys()
        if len(self._masked) < setup.t:
            raise BelowThreshold(f"shares from {len(self._masked)} neighbours < t={setup.t}", party=self.party, stage="masked_input")
        y = np.empty_like(self._x)
        pairwise = [(self._s.shared_seed(self._keys[v][1], setup.pair_context(PAIRWISE_MASK_DOMAIN, self.cid, v)), PAIRWISE_MASK_DOMAIN, mask_sign(self.cid, v))
                    for v in sorted(self._masked)]
        AesCtrPrg(setup.ring).add_streams(y, [(self._seed, SELF_MASK_DOMAIN, 1)] + pairwise, start=self._x)
        del self._seed, self._x, self._channels
        self._stage = Stage.CONSISTENCY_CHECK if setup.active else Stage.UNMASKING
        return Kind.VECTOR, vector_writer(setup.ring, y)  # y copied once, into the reply frame

    def _open_share(self, v: int, ciphertext: bytes) -> tuple[np.ndarray, np.ndarray] | None:
        """(seed share, key share) that neighbour v sent this client, or None if its ciphertext fails to authenticate
        under the pair's channel key (this round's, for sender v and recipient this client), holds another pair's ids
        or a share element outside GF(p) (its length is fixed: the server admits only ciphertexts of
        SHARE_CIPHERTEXT_BYTES, ids + two shares sealed). So an honest holder never reveals a share out of the field.
        Either of the two could have made it so (the key is symmetric, the server cannot tell): this client holds no
        share of v and keeps the pair's mask, which comes from the advertised keys, not from the share. An active server
        that forges the relayed ciphertext gains nothing by it: the client masks as for the genuine one and reveals less."""
        try:
            plain = self._channels[v].decrypt(ciphertext, self.setup.share_associated_data(v, self.cid))
        except InvalidTag:
            return None
        ids, key_share, seed_share = plain[:8], plain[8:8 + SHARE_BYTES], plain[8 + SHARE_BYTES:]
        if ids != Writer().u32(v).u32(self.cid).getvalue():
            return None
        seed_share, key_share = (np.frombuffer(share, dtype=">u8").astype(np.uint64) for share in (seed_share, key_share))
        if np.any(seed_share >= field.P) or np.any(key_share >= field.P):  # no share of GF(p): unreadable, as a failed tag is
            return None
        return seed_share, key_share

    def _check_survivors(self, r: Reader, survivors: list[int]) -> set[int]:
        """Survivor neighbours; the client must be a survivor and keep at least t surviving neighbours."""
        if self.cid not in survivors:
            raise r.fail("this client is missing from the survivor list")
        live = set(survivors) & self.neighbours
        if not live <= self._masked:
            raise r.fail("a survivor never sent this client its shares")
        if len(live) < self.setup.t:
            raise BelowThreshold(f"{len(live)} surviving neighbours < t={self.setup.t}", party=self.party, stage=r.stage)
        return live

    def _on_consistency_check(self, r: Reader) -> tuple[Kind, bytes]:
        survivors = r.ids(self.setup.n, self.setup.n)
        r.done()
        self._check_survivors(r, survivors)
        self._survivors = survivors
        self._stage = Stage.UNMASKING
        own = self._c.public_bytes() + self._s.public_bytes()
        return Kind.SIGNATURE, self._signer.sign(self.setup.consistency_message(survivors, own))

    def _on_unmasking(self, r: Reader) -> tuple[Kind, bytes]:
        setup = self.setup
        survivors = r.ids(setup.n, setup.n)
        live = self._check_survivors(r, survivors)
        if setup.active:
            signatures = r.entries(SIGNATURE_BYTES, setup.n, setup.n)
            if survivors != self._survivors or not signatures.keys() <= live:
                raise r.fail("survivor list or signers differ from the consistency check")
            counted = {v: signature for v, signature in signatures.items() if v in self._held}
            for v, signature in counted.items():
                verify(self._pki[v], signature, setup.consistency_message(survivors, b"".join(self._keys[v])))
            if len(counted) < setup.t:
                raise BelowThreshold(f"{len(counted)} signatures of neighbours whose shares this client holds < t={setup.t}",
                                     party=self.party, stage="unmasking")
        r.done()
        shares = {}
        for v, (seed_share, key_share) in self._held.items():
            kind = Secret.SELF_MASK_SEED if v in live else Secret.MASK_KEY
            shares[v] = (kind, seed_share if kind == Secret.SELF_MASK_SEED else key_share)
            self.revealed[v] = kind
        del self._held
        self._stage = None
        return Kind.UNMASK_SHARES, encode_unmask_shares(shares, self.unreadable)
