"""Security invariants: a masked input looks uniform, aborts reveal nothing, an honest client
never reveals both secrets of a peer, secrets come from the OS CSPRNG unless a seed is given."""

import numpy as np
import pytest
from hypothesis import given, settings

from protocols import BelowThreshold, DropoutSchedule, Refused, SecAgg, SecAggPlus, Stage, secure_sum
from protocols.masking_messages import Kind, Secret, parse_unmask_shares
from protocols.testing import rounds
from protocols.wire import SERVER, Reader, Writer, decode_frame, encode_frame


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
