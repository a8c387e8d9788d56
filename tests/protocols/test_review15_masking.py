"""Review 15: the masking family (SecAgg, SecAgg+, active mode) attacked sentence by sentence.

Breaks (strict xfails until fixed; the fixed ones are regression tests now):
  1. a Byzantine client that advertises a low-order X25519 key (c or s) makes every honest neighbour abort: the
     server admits the key unchecked, each neighbour's key agreement raises InvalidTag inside `handle`, and the
     neighbour drops out; on SecAgg (complete graph) one client aborts the whole round (fixed: the server refuses it);
  2. a Byzantine dealer that seals an honest neighbour a wrong share (in the field or not) under the genuine
     channel key gets that honest holder named as the sender of bad unmasking shares (report notes and `rejected`)
     (fixed: the holder range-checks at receipt, a share off the polynomial names the pair dealer -> holder);
  3. the `secagg` stack leaf never pins n (`SecAgg.clients`), so a client built from a stack takes whatever n the
     server announces and a server that announces fewer clients lowers t (31 -> 4 clients: t 21 -> 3);
  4. on a sparse graph, two runs of k/2 positions with t - k/2 corrupt clients each (none if t <= k/2) and the rest
     dropped after sharing (against an active server: claimed dropped) cut the graph, and the server learns the sum of
     each component, within the stated colluders (demonstrated on H(8, 20) active and passive); for_clients' active
     picks do not bound this cut at 2^-sigma;
  5. `client_role` takes a position outside [0, n) from the server: an untyped error later (or, active, i = -1 is
     accepted as position n - 1) (fixed: Refused).
Held (regression tests): the stated dropout tolerance k - t in the worst case (all drops in one client's
neighbourhood, at any stages) and one more drop at unmasking aborting with BelowThreshold and no output; the
declared colluders against the equivocating server at the smallest n and on the complete-graph fallback; an active
SecAgg+ client ignoring a graph seed the server sends it."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import BelowThreshold, DropoutSchedule, MalformedMessage, Refused, SecAgg, SecAggPlus, Stage, secure_sum
from protocols.core.errors import ProtocolError
from protocols.core.messages import Kind, parse_vector
from protocols.core.pki import ClientIdentity, KeyDirectory, roster_digest, simulated_signer
from protocols.core.stack import StackContext, build, innermost, parse
from protocols.core.wire import SERVER, Frame, Reader, Writer, decode_frame, encode_frame
from protocols.masking.client import MaskingClient
from protocols.masking.graph import HararyGraph, binomial_tail, harary_neighbours
from protocols.masking.messages import Secret
from protocols.masking.server import _REQUEST, MaskingServer
from protocols.masking.setup import PAIRWISE_MASK_DOMAIN, SELF_MASK_DOMAIN, RoundSetup, mask_sign
from protocols.testing import check_sum, equivocation_attack, share_blame
from secagg import Ring, SeededRandomness, field
from secagg.aead import AuthenticatedCipher
from secagg.agreement import X25519Agreement
from secagg.prg import AesCtrPrg

# --- break 1: a low-order advertised key ---------------------------------------------------------------------------

LOW_ORDER = {  # X25519 u-coordinates whose product with any clamped scalar is the identity (all-zero shared secret)
    "zero": bytes(32),
    "order 8": bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    "p": bytes.fromhex("ed" + "ff" * 30 + "7f"),  # p itself, a non-canonical encoding of 0
}


def _low_order_advertiser(byzantine: int, slot: int, point: bytes, n: int, active: bool):
    """Client `byzantine` advertises `point` as its c key (slot 0) or s key (slot 1), re-signed in active mode with its
    own (simulated) signing key: a Byzantine client signs whatever keys it likes."""

    def tamper(src, dst, frame):
        if src == byzantine and frame[3] == Kind.ADVERTISE:
            f = decode_frame(frame, party="t", stage="t")
            keys = [f.payload[:32], f.payload[32:64]]
            keys[slot] = point
            payload = keys[0] + keys[1]
            if active:
                setup = RoundSetup(n=n, k=n - 1, t=1, d=1, ring=Ring(32), active=True, session=f.session, roster=roster_digest(list(range(n))))
                payload += simulated_signer(byzantine).sign(setup.advertise_message(byzantine, keys[0], keys[1]))
            return [encode_frame(Frame(f.kind, f.session, f.sender, f.recipient, payload))]
        return [frame]

    return tamper


@pytest.mark.parametrize("slot", [0, 1], ids=["c key", "s key"])
@pytest.mark.parametrize("point", list(LOW_ORDER), ids=list(LOW_ORDER))
@pytest.mark.parametrize("protocol", [SecAgg(), SecAgg(active=True), SecAggPlus(n=8, k=4, t=3)], ids=["secagg", "secagg active", "secagg+"])
def test_a_byzantine_clients_low_order_key_excludes_only_that_client(protocol, point, slot):
    """A Byzantine client advertises a low-order c or s key: the server refuses that advertisement (MalformedMessage at
    ADVERTISE_KEYS), the round goes on without the client, exact. Was a break (review 15): the server admitted the key
    unchecked and every honest neighbour aborted on it (InvalidTag in its key agreement); on SecAgg the round aborted."""
    n, byzantine = 8, 3
    inputs = np.arange(2 * n, dtype=np.uint32).reshape(n, 2)
    out = secure_sum(inputs, protocol=protocol, seed=1, tamper=_low_order_advertiser(byzantine, slot, LOW_ORDER[point], n, protocol.active))
    assert out.included == tuple(u for u in range(n) if u != byzantine)
    assert any(isinstance(e, MalformedMessage) and e.stage == "ADVERTISE_KEYS" for e in out.rejected)
    check_sum(inputs, out, 32)


# --- break 2: a Byzantine dealer frames an honest holder -------------------------------------------------------------


@pytest.mark.parametrize("wrong", ["in the field", "out of the field"])
@pytest.mark.parametrize("secret", ["seed", "key"])
def test_a_byzantine_dealer_cannot_get_an_honest_holder_named(monkeypatch, wrong, secret):
    """Dealer 1 knows the channel key it shares with honest client 4, so it can seal 4 any 80 bytes of shares; 4 cannot
    tell them from good ones and reveals the one the server asks for (the seed share: 1 survives; the key share: 1
    drops after sharing). The sum is right either way (the other 6 shares are good); the report must not blame 4 alone:
    out of the field, 4 refuses the share at receipt (UNREADABLE, the pair listed as for a failed tag); in the field, the
    report names the pair 1 -> 4. Was a break (review 15): 4 revealed the share unchecked and the server named 4 as the
    sender of bad unmasking shares (`rejected` and the notes)."""
    genuine, associated = AuthenticatedCipher.encrypt, RoundSetup.share_associated_data
    offset = 8 + (40 if secret == "seed" else 0)  # plaintext: sender, recipient (4 + 4), key share (40), seed share (40)

    def encrypt(self, plaintext, associated_data, *, rng):
        if associated_data.endswith(b"|1>4"):
            share = np.frombuffer(plaintext[offset:offset + 40], dtype=">u8").astype(np.uint64)
            share[0] = np.uint64(2**64 - 1) if wrong == "out of the field" else (share[0] + np.uint64(1)) % np.uint64(field.P)
            plaintext = plaintext[:offset] + share.astype(">u8").tobytes() + plaintext[offset + 40:]
        return genuine(self, plaintext, associated_data, rng=rng)

    monkeypatch.setattr(RoundSetup, "share_associated_data", lambda self, s, r: associated(self, s, r) + f"|{s}>{r}".encode())
    monkeypatch.setattr(AuthenticatedCipher, "encrypt", encrypt)
    n = 8  # SecAgg: k = 7 holders, t = 4, one bad share: uniquely decoded, so its holder is named
    inputs = np.random.default_rng(5).integers(0, 2**32, (n, 3), dtype=np.uint64).astype(np.uint32)
    drops = DropoutSchedule({1: Stage.MASKED_INPUT}) if secret == "key" else DropoutSchedule({})
    out = secure_sum(inputs, protocol=SecAgg(), dropouts=drops, seed=1)
    check_sum(inputs, out, 32)
    assert 4 in out.included
    assert not any("client 4's unmasking shares" in str(e) for e in out.rejected), [str(e) for e in out.rejected]
    assert "bad unmasking shares dropped, from clients [4]" not in out.reports[0].guarantee.notes, out.reports[0].guarantee.notes
    notes = out.reports[0].guarantee.notes
    if wrong == "out of the field":
        assert share_blame(out) == (set(), set()) and "(sender -> recipients: 1 -> [4])" in notes, notes
    else:
        assert share_blame(out) == (set(), {(1, 4)}) and "(dealer -> holders: 1 -> [4])" in notes, notes


# --- break 3: the stack's SecAgg takes the server's n ------------------------------------------------------------------


@pytest.mark.parametrize("active", [False, True], ids=["passive", "active"])
def test_a_stack_built_secagg_client_refuses_a_round_announced_for_fewer_clients(active):
    """Was a break (review 15): the `secagg` stack leaf did not pin n, so its client took the announced n and a server
    announcing 4 of 31 clients got t = 3 (configured: 16, active 21); the leaf now pins clients = participants."""
    protocol = innermost(build(parse(f"secagg(active={str(active).lower()})"), StackContext(dim=4, participants=31), inputs="ring"))
    assert protocol.degree_and_threshold(31)[1] == (21 if active else 16)  # what this client's configuration gives
    fewer = SecAgg(active=active).open_round(4, 4, SeededRandomness(0))  # the server's half, for 4 clients (the victim, 3 Sybils)
    if fewer.use_roster is not None:
        fewer.seat([0, 1, 2, 3], KeyDirectory())
    identity = {"identity": ClientIdentity.simulated(0)} if active else {}
    with pytest.raises(Refused, match="n"):
        protocol.client_role(0, np.zeros(4, dtype=np.uint32), fewer.public, SeededRandomness(1), {}, **identity)


# --- break 5: a position outside the round ------------------------------------------------------------------------------


@pytest.mark.parametrize("position", [-1, 6, 7])
@pytest.mark.parametrize("protocol", [SecAgg(), SecAgg(active=True), SecAggPlus(n=6, k=2, t=2)], ids=["secagg", "secagg active", "secagg+"])
def test_a_client_refuses_a_position_outside_the_round_typed(protocol, position):
    """Was a break (review 15): client_role took the position the server sent unchecked (passive: an untyped ValueError
    at the first KEYS frame; active: IndexError, or i = -1 seated as position n - 1); now Refused naming i."""
    opened = protocol.open_round(6, 2, SeededRandomness(0))
    if opened.use_roster is not None:
        opened.seat(list(range(6)), KeyDirectory())
    identity = {"identity": ClientIdentity.simulated(position % 6 if position < 0 else 0)} if protocol.active else {}
    with pytest.raises(Refused):
        protocol.client_role(position, np.zeros(2, dtype=np.uint32), opened.public, SeededRandomness(1), {}, **identity)


# --- held: the stated dropout tolerance, in the worst case --------------------------------------------------------------


def _protocols(n: int, active: bool):
    out = [SecAgg(active=active)]
    for k in range(2, n - 1, 2):
        low = k // 2 + 1 if active else 1
        out += [SecAggPlus(n=n, k=k, t=t, active=active) for t in range(low, k + 1)]
    return out


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_the_stated_dropout_tolerance_holds_in_one_neighbourhood_and_one_more_aborts_with_no_output(data):
    """k - t drops (the report's `dropout_tolerance`), all among one target client's neighbours and at any stages, always
    complete with the exact sum of the clients that sent their masked inputs; k - t + 1 of the target's neighbours
    dropping at unmasking (or, active, at the consistency check) abort with BelowThreshold: no aggregate."""
    n, active = data.draw(st.integers(3, 11)), data.draw(st.booleans())
    protocol = data.draw(st.sampled_from(_protocols(n, active)))
    seed = data.draw(st.integers(0, 2**16))
    inputs = np.arange(2 * n, dtype=np.uint32).reshape(n, 2) * np.uint32(2654435761)
    clean = secure_sum(inputs, protocol=protocol, seed=seed)
    g = clean.reports[0].guarantee
    k, t, tolerance = g.parameters["k"], g.parameters["t"], g.dropout_tolerance
    assert tolerance == k - t
    neighbours = harary_neighbours(n, k, bytes.fromhex(g.parameters["graph_seed"]) if k < n - 1 else None)
    target = data.draw(st.integers(0, n - 1))
    around = sorted(neighbours[target])
    stages = [s for s in Stage if active or s != Stage.CONSISTENCY_CHECK]
    dropped = data.draw(st.lists(st.sampled_from(around), min_size=tolerance, max_size=tolerance, unique=True))
    drops = {u: data.draw(st.sampled_from(stages)) for u in dropped}
    out = secure_sum(inputs, protocol=protocol, dropouts=DropoutSchedule(drops), seed=seed)
    assert out.included == tuple(u for u in range(n) if u not in drops or drops[u] > Stage.MASKED_INPUT)
    check_sum(inputs, out, 32)
    late = data.draw(st.sampled_from([Stage.UNMASKING] + ([Stage.CONSISTENCY_CHECK] if active else [])))
    one_more = {u: late for u in data.draw(st.lists(st.sampled_from(around), min_size=tolerance + 1, max_size=tolerance + 1, unique=True))}
    with pytest.raises(BelowThreshold):
        secure_sum(inputs, protocol=protocol, dropouts=DropoutSchedule(one_more), seed=seed)


# --- held: the declared colluders at the edges ---------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 12), how=st.sampled_from(["secagg", "fallback"]), victim=st.integers(0, 11), seed=st.integers(0, 2**16))
def test_the_declared_colluders_hold_against_the_equivocating_server_at_small_n(n, how, victim, seed):
    """The report's `colluders` (SecAgg's default, or `for_clients_or_complete`'s pick, the FL stacks' below n = 12)
    corrupt neighbours of the victim, with the server telling some neighbours it survived and the others it dropped:
    never both of its secrets."""
    if how == "fallback" and n < 3:
        n = 3
    protocol = SecAgg(active=True) if how == "secagg" else SecAggPlus.for_clients_or_complete(n, active=True, dropout=0.01)
    k, t = protocol.degree_and_threshold(n)
    c = protocol.colluder_count(n, k, t)
    setup = RoundSetup(n=n, k=k, t=t, d=2, ring=Ring(32), active=True, session=b"review15")
    outcome = equivocation_attack(setup, np.zeros((n, 2), dtype=np.uint32), victim % n, min(c, k), seed=seed)
    assert not outcome.both, f"both secrets of client {victim % n} with c={c} colluders, n={n}, k={k}, t={t}"


# --- held: an active SecAgg+ client ignores the graph seed the server sends ---------------------------------------------


@pytest.mark.parametrize("told", ["another seed", "the seed of a graph with client 0 among colluders"])
def test_an_active_secagg_plus_client_ignores_a_graph_seed_the_server_sends(told):
    """An active server that tells client 0 a graph seed of its choosing (to pick its neighbours) changes nothing: the
    client's neighbours come from the signed advertisements (the same ones every client hashes)."""
    n = 10
    protocol = SecAggPlus(n=n, k=4, t=3, active=True)
    opened = protocol.open_round(n, 2, SeededRandomness(7))
    opened.seat(list(range(n)), KeyDirectory())
    lying = dict(opened.public, graph_seed=(bytes(32) if told == "another seed" else bytes([7]) * 32).hex())
    honest = protocol.client_role(0, np.zeros(2, dtype=np.uint32), opened.public, SeededRandomness(1), {}, identity=ClientIdentity.simulated(0))
    lied_to = protocol.client_role(0, np.zeros(2, dtype=np.uint32), lying, SeededRandomness(1), {}, identity=ClientIdentity.simulated(0))
    assert honest.setup == lied_to.setup and lied_to.setup.graph_seed is None


# --- break 4: the graph cut an active server makes by claiming drops ----------------------------------------------------


class _RecordingServer(MaskingServer):
    """The server, keeping every secret it reconstructs at unmasking (what it holds anyway)."""

    def _reconstruct(self, owner, kind, responses, check):
        secret = super()._reconstruct(owner, kind, responses, check)
        self.opened = {**getattr(self, "opened", {}), (owner, kind): secret}
        return secret


def _cut_round(n: int, k: int, t: int, windows: list[int], seed: int, active: bool):
    """A SecAgg+ round (real clients, the real server relaying) in which the honest clients of each window of k/2
    consecutive graph positions drop after sharing: active, the server has one colluder at the window's first position
    and discards the masked inputs of the others (each client next to a window keeps k/2 + 1 live neighbours); passive,
    no colluder, the whole window drops (k/2 live neighbours). Returns (inputs, components of the included honest
    clients, what the server computes for each component from what it holds, the report's colluder bound)."""

    ring, d = Ring(32), 3
    inputs = np.random.default_rng(seed).integers(0, 2**32, (n, d), dtype=np.uint64).astype(np.uint32)
    setup = RoundSetup(n=n, k=k, t=t, d=d, ring=ring, active=active, session=seed.to_bytes(8, "big"), graph_seed=None if active else bytes(32))
    pki = [simulated_signer(i).public_bytes() for i in range(n)] if active else None
    clients = [MaskingClient(i, setup, inputs[i], SeededRandomness(seed * 1000 + i), simulated_signer(i) if active else None, pki) for i in range(n)]
    server, masked, colluders, discarded = _RecordingServer(setup, pki), {}, set(), set()
    for stage in [s for s in Stage if active or s != Stage.CONSISTENCY_CHECK]:
        for u, frame in server.requests().items():
            reply = clients[u].handle(frame)
            if stage == Stage.MASKED_INPUT:
                if u in discarded:
                    continue  # passive: the client drops; active: the server discards this honest client's masked input
                masked[u] = parse_vector(Reader(decode_frame(reply, party="t", stage="t").payload, party="t", stage="t"), ring, d)
            server.receive(reply, link=u)
        server.close()
        if stage == Stage.ADVERTISE_KEYS:  # the graph is known: seat the colluders and pick whom to discard
            at = HararyGraph(n, k, server.graph_seed)._label(np.arange(n)).tolist()  # position -> client
            for start in windows:
                colluders |= {at[start]} if active else set()
                discarded |= {at[(start + j) % n] for j in range(1 if active else 0, k // 2)}
    neighbours = server.neighbours
    assert max(len(neighbours[u] & colluders) for u in range(n) if u not in colluders) <= 1
    rest = [u for u in range(n) if u not in colluders and u not in discarded]
    components, seen = [], set()
    for u in rest:  # the components of the included honest clients once colluders and discarded clients are cut out
        if u in seen:
            continue
        comp, todo = set(), [u]
        while todo:
            v = todo.pop()
            if v not in comp:
                comp.add(v)
                todo += [w for w in neighbours[v] if w in rest]
        seen |= comp
        components.append(sorted(comp))
    computed = []
    for comp in components:  # the server's sum of one component: its masked inputs minus every mask it can compute
        acc = ring.zeros(d)
        for u in comp:
            ring.add(acc, masked[u], out=acc)
        streams = [(server.opened[(u, Secret.SELF_MASK_SEED)], SELF_MASK_DOMAIN, -1) for u in comp]
        for u in comp:
            for w in sorted(neighbours[u] - set(comp)):  # a colluder's key it is given; a discarded client's it reconstructed
                key = clients[w]._s if w in colluders else X25519Agreement.from_private_bytes(server.opened[(w, Secret.MASK_KEY)])
                seed_uw = key.shared_seed(server._keys[u][32:64], setup.pair_context(PAIRWISE_MASK_DOMAIN, u, w))
                streams.append((seed_uw, PAIRWISE_MASK_DOMAIN, -mask_sign(u, w)))
        AesCtrPrg(ring).add_streams(acc, streams)
        computed.append(acc)
    assert np.array_equal(server.result()[0], ring.sum(inputs[list(server.result()[1])]))  # the round itself completed, exact
    return inputs, components, computed, SecAggPlus(n=n, k=k, t=t, active=active).colluder_count(n, k, t)


@pytest.mark.parametrize("active, t, stated", [(True, 5, 0), (False, 3, 2)], ids=["active, 2 colluders", "passive, no colluder"])
def test_the_cut_is_real_the_server_learns_each_components_sum_within_the_stated_colluders(active, t, stated):
    """SecAggPlus(n=20, k=8, t): active, two colluders (no client has both as neighbours) and 6 discarded masked inputs;
    passive, 8 honest clients dropping after sharing, no colluder. Either cuts H(8, 20) in two: the server computes the
    sum of each half. Was a break (review 15): the active report stated c = 1 (2t - k - 1) corrupt neighbours, which
    this attack stays within; it now states c = t - k/2 - 1 = 0 (one per run is beyond it). The passive report states
    c = 2 and now also that dropouts must not cut the graph (two runs of k/2 positions all dropped or corrupt)."""
    inputs, components, computed, c = _cut_round(20, 8, t, windows=[0, 10], seed=3, active=active)
    assert c == stated and len(components) == 2 and all(len(comp) >= 2 for comp in components)
    if not active:
        assert "two runs of k/2=4 graph positions are all dropped or corrupt" in SecAggPlus(n=20, k=8, t=t)._collusion(20, 8, t)
    for comp, value in zip(components, computed):
        assert np.array_equal(value, Ring(32).sum(inputs[comp])), "the server's partial sum"


@pytest.mark.parametrize("plus", [SecAggPlus(n=20, k=8, t=5, active=True), SecAggPlus(n=20, k=8, t=6, active=True), SecAggPlus.for_clients(500, active=True),
                                  SecAggPlus.for_clients(1000, active=True), SecAggPlus.for_clients(5000, active=True, corrupt=0.1),
                                  SecAggPlus.for_clients(1000, active=True, grind_bits=40)],
                         ids=["direct active n=20", "direct active n=20 t=6", "for_clients n=500", "for_clients n=1000", "for_clients n=5000 at 10%",
                              "for_clients n=1000 against 2^40 graphs"])
def test_an_active_sparse_graph_needs_more_corrupt_clients_for_a_cut_than_it_allows(plus):
    """Was a break (review 15): c = 2t - k - 1 (direct) and for_clients' picks (union bound 2^-33..2^-37) allowed the cut by claimed drops; a direct sparse active graph now states c = t - k/2 - 1, and for_clients raises t until `claimed_cut_log2` <= -sigma. (The passive cut by natural dropouts is stated in the text: test above.)"""

    n, k, t = plus.n, plus.k, plus.t
    c = plus.colluder_count(n, k, t)
    per_run = t - k // 2  # corrupt clients one run of k/2 positions needs: all of them neighbours of the client next to it
    if "corrupt" not in plus.targets:
        assert per_run > c, f"k={k}, t={t}: a cut needs {per_run} corrupt neighbours of one client, the report allows c={c}"
        return
    sigma = plus.targets["sigma"] + plus.targets.get("grind_bits", 0.0)
    union = n * (n - k) / 2 * binomial_tail(k // 2, plus.targets["corrupt"], per_run) ** 2
    assert per_run > c or math.log2(union) <= -sigma, f"n={n}, k={k}, t={t}, c={c}: P[cut] up to 2^{math.log2(union):.1f}"


# --- held: any payload of the expected kind, at any stage, gets a typed error from a client --------------------------


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_a_client_answers_any_server_payload_of_the_expected_kind_or_fails_typed(data):
    """The server (active, or the network in front of it) sends one client, at a random stage of an otherwise honest
    round, a payload of the stage's kind built from random ids and random items (keys that may be low-order points,
    ciphertexts, signatures, survivor lists): the client replies or raises a ProtocolError, nothing else."""

    n, active = data.draw(st.integers(3, 7)), data.draw(st.booleans())
    k = n - 1 if n < 5 or data.draw(st.booleans()) else 2
    t = data.draw(st.integers(k // 2 + 1 if active else 1, k))
    setup = RoundSetup(n=n, k=k, t=t, d=2, ring=Ring(16), active=active, session=b"fuzzfuzz", graph_seed=None if active else bytes(32),
                       roster=roster_digest(list(range(n))) if active else b"")
    pki = [simulated_signer(i).public_bytes() for i in range(n)] if active else None
    clients = [MaskingClient(i, setup, np.zeros(2, dtype=np.uint16), SeededRandomness(i), simulated_signer(i) if active else None, pki)
               for i in range(n)]
    server = MaskingServer(setup, pki)
    stages = [s for s in Stage if active or s != Stage.CONSISTENCY_CHECK]
    target, victim = data.draw(st.sampled_from(stages)), data.draw(st.integers(0, n - 1))
    for stage in stages:
        if stage == target:
            ids = data.draw(st.lists(st.integers(0, n - 1), unique=True).map(sorted))
            item = data.draw(st.sampled_from([64, 128, 116, 41]))
            shape = data.draw(st.sampled_from(["bytes", "entries", "ids+entries"]))
            if shape == "bytes":
                payload = data.draw(st.binary(max_size=300))
            else:
                items = {i: data.draw(st.binary(min_size=item, max_size=item)) for i in ids}
                payload = (Writer().ids(ids) if shape == "ids+entries" else Writer()).entries(items).getvalue()
            try:
                clients[victim].handle(encode_frame(Frame(_REQUEST[stage], setup.session, SERVER, victim, payload)))
            except ProtocolError:
                pass
            return
        for u, frame in server.requests().items():
            try:
                server.receive(clients[u].handle(frame), link=u)
            except ProtocolError:
                pass
        try:
            server.close()
        except ProtocolError:
            return
