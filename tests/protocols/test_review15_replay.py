"""Review 15, break 6: an active server replays consistency-check signatures from earlier rounds of the same session.

Claim attacked (SecAgg(active=True, colluders=0) at n = 8: k = 7, t = 4): "the server, even sending different survivor
lists to different clients, with up to c=0 colluding clients (t=4 > (k + c)/2 = 3.5) learns nothing beyond the sum
of the other included inputs".

The session is the server's choice (`open_round` draws it; on Flower the ServerApp writes it, and nothing on a
node ties a masking session to the round), and a consistency signature binds only the session, the roster and the
survivor list. So signatures made in an earlier round with the same session and roster verify in a later one.

The attack, no colluder:
  * harvest (4 honest rounds, same session and roster): clients v, w1, w2, w3 each sign, one a round, each of the
    lists L_j = everyone but the h_i, i != j (j = 1..4; every check of theirs passes: 4 live neighbours >= t);
  * attack round: the server lists to victim v only the keys of S = {h1..h4} (t of them: v accepts), so v's masked
    input carries masks with S only and its seed shares go to S only (w1..w3 get 116 junk bytes as v's ciphertext:
    unreadable, so they keep v's pair mask and count v as a neighbour that shared). At the consistency check it tells h_j the list
    L_j (h_j keeps t live neighbours) and at unmasking relays h_j the 4 harvested signatures of L_j by v, w1, w2, w3.
    Each h_j reveals its share of b_v (v "survived") and of s_sk of every other h_i (they "dropped"); w_j, told L_j,
    reveals s_sk shares of the h_i, i != j. The server has t shares of b_v and of every s_sk_h: y_v minus PRG(b_v) and
    the pairwise masks with S is x_v.
Within one round no such lists get t signatures each (each honest client signs one list a round): the consistency
check is what stops it, and the replay takes it away. Fix: bind something of this round that the verifier knows
into the consistency message, e.g. the signer's own advertised keys of this round (or a hash of the KEYS list it got),
so that an earlier round's signature does not verify; and on Flower tie a masking session to the round (as `_join`
does for HE)."""

import numpy as np
import pytest

from protocols import SecAgg
from protocols.core.errors import ProtocolError
from protocols.core.messages import Kind, parse_vector
from protocols.core.pki import roster_digest, simulated_signer
from protocols.core.schedule import Stage
from protocols.core.wire import SERVER, Frame, Reader, Writer, decode_frame, encode_frame
from protocols.masking.client import MaskingClient
from protocols.masking.messages import SECRET_BYTES, Secret, parse_unmask_shares
from protocols.masking.setup import PAIRWISE_MASK_DOMAIN, SELF_MASK_DOMAIN, RoundSetup, mask_sign
from secagg import Ring, SeededRandomness, shamir
from secagg.agreement import X25519Agreement
from secagg.prg import AesCtrPrg

N, V, S, W = 8, 0, (1, 2, 3, 4), (5, 6, 7)
RING = Ring(32)


def _setup() -> RoundSetup:
    k, t = SecAgg(active=True, colluders=0).degree_and_threshold(N)
    assert (k, t) == (7, 4)
    return RoundSetup(n=N, k=k, t=t, d=3, ring=RING, active=True, session=b"samesess", roster=roster_digest(list(range(N))))


def _lists() -> dict[int, list[int]]:
    return {h: sorted(set(range(N)) - (set(S) - {h})) for h in S}  # L_h: everyone but the other members of S


class _Round:
    """One round driven by the adversarial server over real honest clients with fresh keys (same session and roster)."""

    def __init__(self, setup: RoundSetup, inputs: np.ndarray, seed: int) -> None:
        pki = [simulated_signer(i).public_bytes() for i in range(N)]
        self.setup = setup
        self.clients = [MaskingClient(i, setup, inputs[i], SeededRandomness(seed * 100 + i), simulated_signer(i), pki) for i in range(N)]

    def ask(self, u: int, kind: Kind, payload: bytes) -> bytes | None:
        try:
            reply = self.clients[u].handle(encode_frame(Frame(kind, self.setup.session, SERVER, u, payload)))
        except ProtocolError:
            return None
        return decode_frame(reply, party="server", stage="attack").payload

    def up_to_masked_input(self, keys_for, replayed: dict[int, dict[int, bytes]] | None = None) -> dict[int, np.ndarray]:
        """`replayed[u][v]`: an advertisement of v (from an earlier round) the server lists to u instead of v's own."""
        ads = {u: self.ask(u, Kind.REQUEST, Writer().u8(Stage.ADVERTISE_KEYS).getvalue()) for u in range(N)}
        inbox: dict[int, dict[int, bytes]] = {u: {} for u in range(N)}
        for u in range(N):
            listed = {v: (replayed or {}).get(u, {}).get(v, ads[v]) for v in keys_for(u)}
            reply = self.ask(u, Kind.KEYS, Writer().entries(listed).getvalue())
            r = Reader(reply, party="server", stage="share_keys")
            r.raw(32)
            for v, ciphertext in r.entries(116, N, N).items():
                inbox[v][u] = ciphertext
        self.ads = ads
        masked = {}
        for u in range(N):  # each client gets a ciphertext from every client whose keys it got: junk where none was sent
            relayed = {v: inbox[u].get(v, bytes(116)) for v in keys_for(u)}
            reply = self.ask(u, Kind.RELAYED_SHARES, Writer().entries(relayed).getvalue())
            masked[u] = parse_vector(Reader(reply, party="server", stage="masked_input"), RING, self.setup.d)
        return masked


def _harvest(setup: RoundSetup) -> dict[int, dict[int, bytes]]:
    """signatures[h][signer]: the signature of L_h by signer in {v, w1, w2, w3}, from 4 honest rounds."""
    lists, signers = _lists(), (V, *W)
    signatures: dict[int, dict[int, bytes]] = {h: {} for h in S}
    for rnd in range(len(S)):
        honest = _Round(setup, np.zeros((N, 3), dtype=np.uint32), seed=rnd + 1)
        honest.up_to_masked_input(lambda u: [v for v in range(N) if v != u])
        for j, u in enumerate(signers):
            h = S[(j + rnd) % len(S)]
            signature = honest.ask(u, Kind.SURVIVORS, Writer().ids(lists[h]).getvalue())
            assert signature is not None, f"client {u} refused to sign L_{h}"
            signatures[h][u] = signature
    return signatures


def _reconstruct(holders: dict[int, np.ndarray], t: int) -> bytes:
    points = sorted(holders)[:t]
    return shamir.field_to_bytes(shamir.reconstruct([p + 1 for p in points], np.stack([holders[p] for p in points]), t), SECRET_BYTES)


def test_replayed_consistency_signatures_do_not_unmask_an_honest_input():
    """The attack of the module docstring, end to end. Was a break (review 15): a consistency signature bound only the
    session, roster and survivor list, so the harvested signatures verified in the attack round and the server recovered
    client 0's input with no colluder; it now binds the signer's own keys of the round, and h_j refuses v's old one."""
    setup = _setup()
    signatures = _harvest(setup)
    assert all(len(signed) == setup.t for signed in signatures.values())
    inputs = np.random.default_rng(15).integers(0, 2**32, (N, 3), dtype=np.uint64).astype(np.uint32)
    attack = _Round(setup, inputs, seed=99)
    masked = attack.up_to_masked_input(lambda u: list(S) if u == V else [v for v in range(N) if v != u])
    lists = _lists()
    told = {h: lists[h] for h in S} | {w: lists[S[j]] for j, w in enumerate(W)}  # w_j told L_{h_j}
    fresh = {u: attack.ask(u, Kind.SURVIVORS, Writer().ids(survivors).getvalue()) for u, survivors in told.items()}  # this round's
    seed_shares, key_shares = {}, {h: {} for h in S}
    for u, survivors in told.items():
        h = next(h for h in S if lists[h] == survivors)
        relayed = {v: s for v, s in signatures[h].items() if v != u}  # harvested in earlier rounds
        if u != h:
            relayed[h] = fresh[h]  # and h's own, of this round
        reply = attack.ask(u, Kind.UNMASK_REQUEST, Writer().ids(survivors).entries(relayed).getvalue())
        if reply is None:
            continue
        for peer, (kind, share) in parse_unmask_shares(Reader(reply, party="server", stage="unmasking"), N).items():
            if peer == V and kind == Secret.SELF_MASK_SEED:
                seed_shares[u] = share
            elif peer in S and kind == Secret.MASK_KEY:
                key_shares[peer][u] = share
    t = setup.t
    if len(seed_shares) < t or any(len(held) < t for held in key_shares.values()):
        return  # the attack is stopped: the server lacks t shares of the victim's seed or of a mask key
    seed_v = _reconstruct(seed_shares, t)
    s_pk_v = attack.ads[V][32:64]
    streams = [(seed_v, SELF_MASK_DOMAIN, -1)]
    for h in S:
        key = X25519Agreement.from_private_bytes(_reconstruct(key_shares[h], t))
        streams.append((key.shared_seed(s_pk_v, setup.pair_context(PAIRWISE_MASK_DOMAIN, V, h)), PAIRWISE_MASK_DOMAIN, -mask_sign(V, h)))
    recovered = RING.zeros(setup.d)
    AesCtrPrg(RING).add_streams(recovered, streams, start=masked[V])
    assert not np.array_equal(recovered, inputs[V]), "the server recovered honest client 0's input"


@pytest.mark.parametrize("replay", [False, True], ids=["this round's keys and signatures (control)", "earlier round's advertisements and signatures"])
def test_a_signature_counts_only_with_the_signers_keys_of_this_round(replay):
    """The server replays, besides the signatures, the advertisements they were made under (same session and roster:
    their advertisement signatures verify), so that each old signature matches the keys client 0 holds for its signer.
    Client 0 counts a signature only from a neighbour whose share it holds: a share that authenticated under its own fresh
    c key proves the signer's keys are of this round, so the replayed ones (their shares unreadable) count for nothing and
    it refuses to unmask; with this round's keys and signatures (control) it unmasks."""
    setup, survivors, signers = _setup(), list(range(N)), (1, 2, 3, 4)
    earlier = _Round(setup, np.zeros((N, 3), dtype=np.uint32), seed=1)
    earlier.up_to_masked_input(lambda u: [v for v in range(N) if v != u])
    old = {u: earlier.ask(u, Kind.SURVIVORS, Writer().ids(survivors).getvalue()) for u in signers}
    now = _Round(setup, np.zeros((N, 3), dtype=np.uint32), seed=2)
    now.up_to_masked_input(lambda u: [v for v in range(N) if v != u], replayed={V: {u: earlier.ads[u] for u in signers}} if replay else None)
    fresh = {u: now.ask(u, Kind.SURVIVORS, Writer().ids(survivors).getvalue()) for u in (V, *signers)}
    assert fresh[V] is not None
    relayed = old if replay else {u: fresh[u] for u in signers}
    reply = now.ask(V, Kind.UNMASK_REQUEST, Writer().ids(survivors).entries(relayed).getvalue())
    assert (reply is None) == replay
    if replay:
        assert now.clients[V].unreadable >= set(signers) and not now.clients[V].revealed
