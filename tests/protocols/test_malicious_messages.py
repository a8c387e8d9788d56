"""Truncated, oversized, altered, replayed, reordered and forged messages get typed errors and
never change the honest survivors' sum; bad unmasking shares are dropped while t good ones remain."""


import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import Aborted, BelowThreshold, MalformedMessage, Refused, SecAgg, secure_sum
from protocols.core.messages import Kind, parse_vector
from protocols.core.wire import HEADER_BYTES, SERVER, Frame, Reader, decode_frame, encode_frame
from protocols.masking.graph import harary_neighbours
from protocols.masking.messages import encode_unmask_shares, parse_unmask_shares
from protocols.testing import (
    FORMAT_ATTACKS,
    REPLAY_ATTACKS,
    Attack,
    RoundCase,
    as_dropout,
    attacks,
    check_sum,
    expected_survivors,
    rounds,
    run_attacked,
    share_blame,
)
from secagg import Ring


def _model(case: RoundCase, dropouts, out):
    params = out.reports[0].guarantee.parameters
    neighbours = harary_neighbours(case.inputs.shape[0], params["k"], bytes.fromhex(params["graph_seed"]))
    return expected_survivors(neighbours, params["t"], dropouts, case.protocol.active)


def _clean(case):
    try:
        return secure_sum(case.inputs, protocol=case.protocol, dropouts=case.dropouts, seed=case.seed)
    except (BelowThreshold, Aborted):
        return None


@settings(max_examples=120, deadline=None)
@given(data=st.data())
def test_a_rejected_frame_counts_as_a_dropout_of_its_client(data):
    case = data.draw(rounds(max_n=16, max_d=6))
    attack = data.draw(attacks(case.inputs.shape[0], case.protocol.active, FORMAT_ATTACKS))
    out = run_attacked(case, attack)
    n = case.inputs.shape[0]
    dropouts = as_dropout(case.dropouts, attack.client, attack.stage) if attack.fired else case.dropouts
    if out is None:  # aborted, revealing nothing: only allowed where the model says so (checkable on the complete graph)
        k, t = case.protocol.degree_and_threshold(n)
        if k == n - 1:
            assert expected_survivors(harary_neighbours(n, k, None), t, dropouts, case.protocol.active) is None
        return
    check_sum(case.inputs, out, case.protocol.bits)
    if attack.fired and case.dropouts.active(attack.client, attack.stage):
        assert any(isinstance(e, MalformedMessage) for e in out.rejected)
        assert out.included == _model(case, as_dropout(case.dropouts, attack.client, attack.stage), out)


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_replayed_and_reordered_frames_change_nothing(data):
    case = data.draw(rounds(max_n=16, max_d=6))
    attack = data.draw(attacks(case.inputs.shape[0], case.protocol.active, REPLAY_ATTACKS))
    out = run_attacked(case, attack)
    clean = _clean(case)
    assert (out is None) == (clean is None)
    if out is not None:
        assert out.included == clean.included and np.array_equal(out.result, clean.result)
        released = attack.fired and attack._held is None  # a stale frame needs a later frame on its link
        if released and case.dropouts.active(attack.client, attack.stage) and attack.client not in _aborted(clean):
            assert any(isinstance(e, (MalformedMessage, Refused)) for e in out.rejected)


def _aborted(out):
    return {int(e.party.split()[1]) for e in out.rejected if e.party.startswith("client")}


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_corrupted_shares_or_keys_never_yield_a_wrong_sum(data):
    """A compromised client alters its unmasking shares, or (active mode) the server alters relayed keys:
    the round aborts or returns the exact sum of the included inputs."""
    case = data.draw(rounds(max_n=12, max_d=4))
    kinds = [Kind.UNMASK_SHARES] + ([Kind.KEYS, Kind.RELAYED_SHARES, Kind.UNMASK_REQUEST] if case.protocol.active else [Kind.RELAYED_SHARES])
    attack = Attack(data.draw(st.integers(0, case.inputs.shape[0] - 1)), data.draw(st.sampled_from(kinds)), "payload-flip", data.draw(st.integers(0, 2**20)))
    out = run_attacked(case, attack)
    if out is not None:
        check_sum(case.inputs, out, case.protocol.bits)


@settings(max_examples=200)
@given(st.binary(max_size=200))
def test_parsers_reject_arbitrary_bytes_with_malformed_message_only(data):
    for parse in (
        lambda b: decode_frame(b, party="t", stage="t"),
        lambda b: decode_frame(b, party="t", stage="t", copy=False),
        lambda b: parse_vector(Reader(b, party="t", stage="t"), Ring(13), 7),
        lambda b: parse_unmask_shares(Reader(b, party="t", stage="t"), 50),
        lambda b: Reader(b, party="t", stage="t").entries(116, 50, 50),
        lambda b: Reader(b, party="t", stage="t").ids(50, 50),
    ):
        try:
            parse(data)
        except MalformedMessage:
            pass


def test_a_declared_length_is_never_trusted():
    frame = encode_frame(Frame(Kind.VECTOR, b"s" * 8, 1, 2, b"payload"))
    lying = frame[: HEADER_BYTES - 4] + (2**32 - 1).to_bytes(4, "big") + frame[HEADER_BYTES:]
    for bad in (lying, frame[:-1], frame + b"x", frame[:HEADER_BYTES - 1]):
        for copy in (True, False):
            try:
                decode_frame(bad, party="t", stage="t", copy=copy)
            except MalformedMessage:
                continue
            raise AssertionError("a frame with a wrong length parsed")
    view = decode_frame(frame, party="t", stage="t", copy=False).payload  # no copy: a read-only view of the frame
    assert bytes(view) == decode_frame(frame, party="t", stage="t").payload == b"payload" and view.readonly
    big_count = (2**31).to_bytes(4, "big") + b"\x00" * 8
    for read in (lambda r: r.ids(10, 10), lambda r: r.entries(4, 10, 10), lambda r: r.blob(100), lambda r: r.blob(100, copy=False)):
        try:
            read(Reader(big_count, party="t", stage="t"))
        except MalformedMessage:
            continue
        raise AssertionError("an oversized count was accepted")


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_bad_unmasking_shares_never_abort_while_t_good_shares_remain(data):
    """Compromised clients send random unmasking shares: the round completes with the honest result whenever
    every secret keeps t good shares (and names only bad holders), and aborts, revealing nothing, otherwise."""
    case = data.draw(rounds(max_n=12, max_d=4))
    n = case.inputs.shape[0]
    bad = data.draw(st.sets(st.integers(0, n - 1), max_size=n // 2))
    noise = np.random.default_rng(data.draw(st.integers(0, 2**32)))
    sent: dict[int, set[int]] = {}

    def corrupt(src, dst, frame):
        if dst == SERVER and frame[3] == Kind.UNMASK_SHARES:
            f = decode_frame(frame, party="t", stage="t")
            shares = parse_unmask_shares(Reader(f.payload, party="t", stage="t"), n)
            for v in shares:
                sent.setdefault(v, set()).add(src)
            if src in bad:
                forged = {v: (kind, noise.integers(0, 2**61 - 1, size=share.shape, dtype=np.uint64)) for v, (kind, share) in shares.items()}
                return [encode_frame(Frame(f.kind, f.session, f.sender, f.recipient, encode_unmask_shares(forged)))]
        return [frame]

    clean = _clean(case)
    try:
        out = secure_sum(case.inputs, protocol=case.protocol, dropouts=case.dropouts, seed=case.seed, tamper=corrupt)
    except (BelowThreshold, Aborted):
        out = None
    if clean is None:
        return
    t = clean.reports[0].guarantee.parameters["t"]
    if all(len(holders - bad) >= t for holders in sent.values()):
        assert out is not None, "aborted although every secret kept t good shares"
        assert out.included == clean.included and np.array_equal(out.result, clean.result)
        alone, pairs = share_blame(out)
        assert alone | {w for _, w in pairs} <= bad
    else:
        assert out is None, "a secret without t good shares was reconstructed"


def test_the_report_names_the_holder_of_bad_shares_and_the_round_goes_on():
    """Client 0 (first holder of every other client's shares) sends random unmasking shares (in the field): the server
    drops them, uses the spare ones, and names the pair of client 0 and the share's dealer (either may have made it)."""
    n = 7
    inputs = np.arange(3 * n, dtype=np.uint32).reshape(n, 3)
    noise = np.random.default_rng(0)

    def corrupt(src, dst, frame):
        if src == 0 and frame[3] == Kind.UNMASK_SHARES:
            f = decode_frame(frame, party="t", stage="t")
            shares = parse_unmask_shares(Reader(f.payload, party="t", stage="t"), n)
            forged = {v: (kind, noise.integers(0, 2**61 - 1, size=s.shape, dtype=np.uint64)) for v, (kind, s) in shares.items()}
            return [encode_frame(Frame(f.kind, f.session, f.sender, f.recipient, encode_unmask_shares(forged)))]
        return [frame]

    out = secure_sum(inputs, protocol=SecAgg(), seed=2, tamper=corrupt)
    assert out.included == tuple(range(n))
    check_sum(inputs, out, 32)
    assert "(dealer -> holders: 1 -> [0])" in out.reports[0].guarantee.notes
    (named,) = out.rejected  # once a suspect, client 0's later shares are used last, so only the first owner it failed is listed
    assert isinstance(named, MalformedMessage) and share_blame(out) == (set(), {(1, 0)})
