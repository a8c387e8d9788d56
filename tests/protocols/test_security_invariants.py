"""Security invariants: a masked input looks uniform, aborts reveal nothing, an honest client
never reveals both secrets of a peer, secrets come from the OS CSPRNG unless a seed is given; an
active server that equivocates about the survivors, with up to the declared colluders, never gets
both secrets of an honest client; the active SecAgg+ graph is not the server's choice."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import BelowThreshold, DropoutSchedule, MalformedMessage, Refused, SecAgg, SecAggPlus, Stage, secure_sum
from protocols.core.messages import Kind
from protocols.core.wire import SERVER, Reader, Writer, decode_frame, encode_frame
from protocols.masking.graph import check_threshold, corrupt_neighbours_bound
from protocols.masking.messages import Secret, parse_unmask_shares
from protocols.masking.setup import RoundSetup
from protocols.testing import check_sum, equivocation_attack, rounds
from secagg import Ring, SeededRandomness


class Recorder:
    """A tamper hook that only records every frame, by (src, dst, kind)."""

    def __init__(self):
        self.frames = []

    def __call__(self, src, dst, frame):
        self.frames.append((src, dst, frame[3], frame))
        return [frame]

    def of(self, kind):
        return [(s, d, f) for s, d, k, f in self.frames if k == kind]


@pytest.mark.parametrize("value", [0, 9])
def test_a_masked_input_is_uniform_whatever_the_input(value):
    n, d = 5, 32000
    inputs = np.full((n, d), value, dtype=np.uint8) & np.uint8(15)
    rec = Recorder()
    secure_sum(inputs, protocol=SecAgg(bits=4), seed=value, tamper=rec)
    src, _, frame = next(x for x in rec.of(Kind.VECTOR) if x[0] == 0)
    payload = decode_frame(frame, party="test", stage="test").payload
    view = np.frombuffer(payload[5:], dtype=np.uint8)  # bits (1) d (4) vector
    counts = np.bincount(view, minlength=16)
    chi2 = float(((counts - d / 16) ** 2 / (d / 16)).sum())
    assert chi2 < 50, f"masked input of client 0 is not uniform (chi2={chi2:.1f}, 15 dof)"


@settings(max_examples=40, deadline=None)
@given(rounds(max_n=25, max_d=4))
def test_the_server_never_holds_both_secrets_of_a_client(case):
    rec = Recorder()
    try:
        secure_sum(case.inputs, protocol=case.protocol, dropouts=case.dropouts, seed=case.seed, tamper=rec)
    except BelowThreshold:
        pass
    kinds = {}
    for src, _, frame in rec.of(Kind.UNMASK_SHARES):
        shares = parse_unmask_shares(Reader(decode_frame(frame, party="t", stage="t").payload, party="t", stage="t"), case.inputs.shape[0])
        for peer, (kind, _) in shares.items():
            kinds.setdefault(peer, set()).add(kind)
    assert all(len(k) == 1 for k in kinds.values())


def test_a_second_unmasking_request_is_refused():
    """A malicious server asks client 0 again, now claiming a survivor dropped, to get its key share too."""
    n = 6
    inputs = np.arange(n * 3, dtype=np.uint32).reshape(n, 3)
    sent_to_0 = []

    def second_request(src, dst, frame):
        if src == SERVER and dst == 0 and frame[3] == Kind.UNMASK_REQUEST:
            f = decode_frame(frame, party="t", stage="t")
            survivors = Reader(f.payload, party="t", stage="t").ids(n, n)
            fewer = [s for s in survivors if s != max(survivors)]
            forged = encode_frame(type(f)(f.kind, f.session, f.sender, f.recipient, Writer().ids(fewer).getvalue()))
            return [frame, forged]
        if src == 0 and frame[3] == Kind.UNMASK_SHARES:
            sent_to_0.append(frame)
        return [frame]

    out = secure_sum(inputs, protocol=SecAgg(), seed=1, tamper=second_request)
    assert any(isinstance(e, Refused) and e.party == "client 0" for e in out.rejected)
    assert len(sent_to_0) == 1
    shares = parse_unmask_shares(Reader(decode_frame(sent_to_0[0], party="t", stage="t").payload, party="t", stage="t"), n)
    assert {kind for kind, _ in shares.values()} == {Secret.SELF_MASK_SEED}


def test_an_abort_below_threshold_reveals_no_share():
    n = 7
    inputs = np.ones((n, 4), dtype=np.uint32)
    rec = Recorder()
    drops = DropoutSchedule({i: Stage.MASKED_INPUT for i in range(4)})  # 3 survive < t + 1 = 4
    with pytest.raises(BelowThreshold, match="3 clients answered"):
        secure_sum(inputs, protocol=SecAgg(), dropouts=drops, seed=2, tamper=rec)
    assert rec.of(Kind.UNMASK_REQUEST) == [] and rec.of(Kind.UNMASK_SHARES) == []


def test_a_client_refuses_to_unmask_with_fewer_than_t_surviving_neighbours():
    """A server that lies about the survivors (too few) gets no share from an honest client."""
    n = 7
    unmask_replies = []

    def shrink(src, dst, frame):
        if src == SERVER and frame[3] == Kind.UNMASK_REQUEST:
            f = decode_frame(frame, party="t", stage="t")
            return [encode_frame(type(f)(f.kind, f.session, f.sender, f.recipient, Writer().ids([dst]).getvalue()))]
        if frame[3] == Kind.UNMASK_SHARES:
            unmask_replies.append(frame)
        return [frame]

    with pytest.raises(BelowThreshold):
        secure_sum(np.ones((n, 2), dtype=np.uint32), protocol=SecAgg(), seed=4, tamper=shrink)
    assert unmask_replies == []


def test_secrets_come_from_the_os_csprng_without_a_seed(monkeypatch):
    import os

    real = os.urandom
    drawn = []
    monkeypatch.setattr(os, "urandom", lambda k: drawn.append(k) or real(k))
    inputs = np.arange(12, dtype=np.uint32).reshape(4, 3)
    first = Recorder()
    out = secure_sum(inputs, protocol=SecAgg(), tamper=first)
    assert sum(drawn) >= 4 * 2 * 32  # at least two X25519 private keys a client
    second = Recorder()
    secure_sum(inputs, protocol=SecAgg(), tamper=second)
    assert [f for *_, f in first.frames] != [f for *_, f in second.frames]
    assert np.array_equal(out.result, inputs.sum(axis=0, dtype=np.uint32))


def test_a_seed_reproduces_the_round_byte_for_byte():
    inputs = np.arange(12, dtype=np.uint32).reshape(4, 3)
    a, b = Recorder(), Recorder()
    secure_sum(inputs, protocol=SecAggPlus(n=4, k=3, t=2), seed=9, tamper=a)
    secure_sum(inputs, protocol=SecAggPlus(n=4, k=3, t=2), seed=9, tamper=b)
    assert [f for *_, f in a.frames] == [f for *_, f in b.frames]


# --- an active server that equivocates about the survivors, with colluding clients ---------------


def _setup(n, k, t, active=True):
    return RoundSetup(n=n, k=k, t=t, d=2, ring=Ring(32), active=active, session=b"equivoca")


def test_the_equivocation_attack_breaks_thresholds_below_the_colluder_bound():
    """The attack is real: SecAgg's former default t=21 at n=31 claimed 20 colluders and fell to 13, and a
    sparse graph with t <= (k + c)/2 falls too (both secrets of the victim reconstructed and verified)."""
    assert equivocation_attack(_setup(31, 30, 21), np.zeros((31, 2), dtype=np.uint32), 0, 13, seed=1).both
    # the harness needs each honest neighbour to see t signatures of its list among its own neighbours, which
    # depends on the graph: on the sorted-AES-CTR labelling seed 3 / victim 0 gives such a graph (seed 1 no longer)
    assert equivocation_attack(_setup(20, 12, 7), np.zeros((20, 2), dtype=np.uint32), 0, 5, seed=3).both


def test_thresholds_that_do_not_count_the_colluders_are_refused():
    inputs = np.zeros((31, 2), dtype=np.uint32)
    with pytest.raises(ValueError, match="t=21 among k=30 neighbours does not protect against colluders=13"):
        secure_sum(inputs, protocol=SecAgg(t=21, active=True, colluders=13), seed=0)
    with pytest.raises(ValueError, match="t=24 among k=46"):  # for_clients(100, active=True) picked k=46, t=24 before
        secure_sum(np.zeros((100, 2), dtype=np.uint32), protocol=SecAggPlus(n=100, k=46, t=24, active=True, targets={"corrupt": 0.05, "sigma": 40}), seed=0)
    assert SecAgg(active=True).degree_and_threshold(31) == (30, 21) and SecAgg(active=True, colluders=13).degree_and_threshold(31) == (30, 22)


def test_the_report_states_the_colluder_bound_of_an_active_round():
    out = secure_sum(np.zeros((31, 2), dtype=np.uint32), protocol=SecAgg(active=True), seed=0)
    g = out.reports[0].guarantee
    assert g.parameters["colluders"] == 11 and "up to c=11 colluding clients" in g.collusion and "different survivor lists" in g.collusion
    plus = SecAggPlus.for_clients(200, active=True)
    c = corrupt_neighbours_bound(200, plus.k, 0.05, 40)
    assert 2 * plus.t > plus.k + c and plus.t <= plus.k  # t > (k + c)/2, c the corrupt-neighbour count that holds but w.p. 2^-40


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_an_equivocating_server_with_the_declared_colluders_never_gets_both_secrets(data):
    n = data.draw(st.integers(4, 14))
    k = n - 1 if n < 6 or data.draw(st.booleans()) else data.draw(st.sampled_from(list(range(2, n - 1, 2))))
    c = data.draw(st.integers(0, k - 1))
    if (k + c) // 2 + 1 > k:
        c = k - 1 - (k % 2 == 0)  # the largest c some t <= k protects against
    t = data.draw(st.integers((k + c) // 2 + 1, k))
    check_threshold(k, t, True, colluders=c)  # the parameters a round would accept
    victim = data.draw(st.integers(0, n - 1))
    out = equivocation_attack(_setup(n, k, t), np.zeros((n, 2), dtype=np.uint32), victim, c, seed=data.draw(st.integers(0, 2**32)))
    assert not out.both, f"both secrets of client {victim} with {c} corrupt neighbours, k={k}, t={t}"
    assert out.seed_shares < t or out.key_shares < t


# --- the active SecAgg+ graph is the hash of the signed advertisements ---------------------------


def _ads(rec):
    return {s: decode_frame(f, party="t", stage="t").payload for s, d, f in rec.of(Kind.ADVERTISE)}


def test_the_active_graph_comes_from_the_signed_advertisements_not_from_the_server():
    n, rec = 10, Recorder()
    out = secure_sum(np.ones((n, 2), dtype=np.uint32), protocol=SecAggPlus(n=n, k=4, t=3, active=True), seed=5, tamper=rec)
    session = decode_frame(rec.frames[0][3], party="t", stage="t").session
    seed = RoundSetup(n=n, k=4, t=3, d=2, ring=Ring(32), active=True, session=session).graph_seed_from(_ads(rec))
    assert out.reports[0].guarantee.parameters["graph_seed"] == seed.hex()
    keys_to_0 = Reader(decode_frame(next(f for s, d, f in rec.of(Kind.KEYS) if d == 0), party="t", stage="t").payload, party="t", stage="t")
    assert set(keys_to_0.entries(128, n, n)) == set(range(n))  # every signed advertisement, so client 0 can hash them itself
    assert out.included == tuple(range(n))


@pytest.mark.parametrize("how", ["alter", "omit"])
def test_a_server_steering_one_clients_graph_only_drops_that_client(how):
    """The server alters one advertisement (re-signing is impossible) or omits one from the list it sends client 0,
    to move client 0's graph: client 0 refuses, or computes a graph the honest views disagree with and is excluded."""
    n = 10

    def steer(src, dst, frame):
        if src == SERVER and dst == 0 and frame[3] == Kind.KEYS:
            f = decode_frame(frame, party="t", stage="t")
            entries = Reader(f.payload, party="t", stage="t").entries(128, n, n)
            if how == "alter":
                entries[5] = bytes([entries[5][0] ^ 1]) + entries[5][1:]
            else:
                del entries[5]
            return [encode_frame(type(f)(f.kind, f.session, f.sender, f.recipient, Writer().entries(entries).getvalue()))]
        return [frame]

    out = secure_sum(np.arange(2 * n, dtype=np.uint32).reshape(n, 2), protocol=SecAggPlus(n=n, k=6, t=4, active=True), seed=3, tamper=steer)
    assert 0 not in out.included and any(isinstance(e, MalformedMessage) for e in out.rejected)
    check_sum(np.arange(2 * n, dtype=np.uint32).reshape(n, 2), out, 32)


@pytest.mark.parametrize("field, value", [("t", 1), ("k", 10), ("n", 12), ("bits", 16)])
def test_a_client_refuses_public_parameters_its_own_configuration_does_not_give(field, value):
    """A server that sends a lower threshold (or another graph or ring) to a remote client gets a refusal."""
    protocol = SecAggPlus.for_clients(30, bits=32)
    public = protocol.open_round(30, 4, SeededRandomness(0)).public
    with pytest.raises(Refused, match=field):
        protocol.client_role(0, np.zeros(4, dtype=np.uint32), {**public, field: value}, SeededRandomness(1), {})
