"""Review attack: colluding clients re-advertise honest clients' mask keys (s_pk), and the active server lists
those copies to the victim, so the victim's pairwise masks cancel inside its own masked input.

Claim attacked (SecAgg guarantee text, active): "the server, even sending different survivor lists to
different clients, with up to c=11 colluding clients (t=21 > (k + c)/2 = 20.5) learns nothing beyond the
sum of the other included inputs" (SecAgg(active=True) at n=31, k=30, t=21).

The attack uses no survivor-list equivocation. Corrupt w < v signs an advertisement (c_pk_w, s_pk_u) that
carries the s_pk of an honest u > v; the victim v checks each signature but not that the keys are distinct
(only the honest server's ADVERTISE parser does that). v adds +PRG(s_vu) for u and -PRG(s_vu) for w, which
cancel. With 11 such pairs, and the server relaying v only their keys and shares (22 >= t neighbours), v's masked
input is y_v = x_v + PRG(b_v). The round then goes on honestly: v survives, its holders reveal their shares
of b_v, and x_v = y_v - PRG(b_v).

Result: the attack FAILS because RoundSetup.pair_context binds each pairwise seed to the pair {u, v} (HKDF
info), so s_vw != s_vu although the DH values are equal. Checked by ablation: with the pair ids removed from
pair_context this test fails (the victim's input is recovered). Keep it as the regression test of that binding.
"""

import numpy as np

from protocols.core.errors import ProtocolError
from protocols.core.messages import parse_vector
from protocols.core.wire import Frame, Reader, Writer, decode_frame, encode_frame
from protocols.masking.client import MaskingClient
from protocols.masking.messages import COMMITMENT_BYTES, SHARE_CIPHERTEXT_BYTES, Secret, key_entry_bytes, parse_unmask_shares
from protocols.masking.recovery import robust_reconstruct
from protocols.masking.secagg import SecAgg
from protocols.masking.server import MaskingServer
from protocols.masking.setup import SELF_MASK_DOMAIN, RoundSetup
from secagg import Ring, SeededRandomness
from secagg.prg import AesCtrPrg
from secagg.signatures import Signer


def _payload(frame: bytes):
    return decode_frame(frame, party="t", stage="t")


def _with_payload(frame: bytes, payload: bytes) -> bytes:
    f = _payload(frame)
    return encode_frame(Frame(f.kind, f.session, f.sender, f.recipient, payload))


def test_colluders_copying_honest_mask_keys_do_not_unmask_the_victim():
    n, victim = 31, 15
    k, t = SecAgg(active=True).degree_and_threshold(n)
    assert (k, t) == (30, 21) and SecAgg(active=True).colluder_count(n, k, t) == 11  # the claim: safe with 11 colluders
    corrupt = list(range(11))  # all below the victim
    partner = {w: 16 + w for w in corrupt}  # honest 16..26, all above the victim
    ring = Ring(32)
    setup = RoundSetup(n=n, k=k, t=t, d=4, ring=ring, active=True, session=b"keycopy1")
    rng = SeededRandomness(11)
    inputs = rng.fork("inputs").uint64(n * 4).reshape(n, 4) & np.uint64(2**32 - 1)
    signers = [Signer.generate(rng) for _ in range(n)]
    pki = [s.public_bytes() for s in signers]
    clients = [MaskingClient(i, setup, inputs[i].astype(np.uint32), rng.fork(f"client {i}"), signers[i], pki) for i in range(n)]
    server = MaskingServer(setup, pki)

    def lenient(u, r):  # the active server takes the victim's 22 ciphertexts (an honest one refuses fewer than the live neighbours)
        return r.raw(COMMITMENT_BYTES), r.entries(SHARE_CIPHERTEXT_BYTES, n, n)

    server._parse_share_keys = lenient
    listed = set(corrupt) | set(partner.values())

    def stage(rewrite=lambda u, f: f):
        replies = {}
        for u, frame in server.requests().items():
            try:
                replies[u] = clients[u].handle(rewrite(u, frame))
            except ProtocolError:
                continue
            server.receive(replies[u], link=u)
        server.close()
        return replies

    stage()  # ADVERTISE_KEYS

    def keys(u, frame):
        if u != victim:
            return frame
        entries = Reader(_payload(frame).payload, party="t", stage="t").entries(key_entry_bytes(True), n, n)
        out = {u: entries[u] for u in partner.values()}
        for w, u in partner.items():
            c_pk, s_pk = entries[w][:32], entries[u][32:64]
            out[w] = c_pk + s_pk + signers[w].sign(setup.advertise_message(w, c_pk, s_pk))
        return _with_payload(frame, Writer().entries(out).getvalue())

    stage(keys)  # SHARE_KEYS: the victim gets 22 keys, 11 of them copies

    def relayed(u, frame):
        if u != victim:
            return frame
        entries = Reader(_payload(frame).payload, party="t", stage="t").entries(SHARE_CIPHERTEXT_BYTES, n, n)
        return _with_payload(frame, Writer().entries({w: c for w, c in entries.items() if w in listed}).getvalue())

    replies = stage(relayed)  # MASKED_INPUT
    f = _payload(replies[victim])
    y = parse_vector(Reader(f.payload, party="t", stage="t"), ring, setup.d)
    stage()  # CONSISTENCY_CHECK: the true survivor list, to everyone
    shares = {}
    for u, frame in server.requests().items():  # UNMASKING
        try:
            reply = clients[u].handle(frame)
        except ProtocolError:
            continue
        got = parse_unmask_shares(Reader(_payload(reply).payload, party="t", stage="t"), n)
        if victim in got and got[victim][0] == Secret.SELF_MASK_SEED:
            shares[u] = got[victim][1]
    holders = sorted(shares)
    seed, _ = robust_reconstruct(holders, np.stack([shares[w] for w in holders]), t, lambda s: setup.commitment(victim, s) == server._commitments[victim])
    assert seed is not None, f"only {len(holders)} seed shares"
    guess = y.copy()
    AesCtrPrg(ring).add_into(guess, seed, SELF_MASK_DOMAIN, sign=-1)
    assert len(holders) >= t  # the attack ran to the end: the seed is the victim's
    assert not np.array_equal(guess.astype(np.uint64), inputs[victim]), "the server with 11 colluders recovered the victim's input alone"
