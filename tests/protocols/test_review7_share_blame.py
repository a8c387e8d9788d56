"""Review 7 (A): adversarial review of the "unreadable shares" change of SecAgg / SecAgg+ (share-blame merge).

Attacked: (1) privacy, the SecAgg invariant that for each client the server gets shares of b_u or of s_sk_u from the
honest holders, never both kinds, against Byzantine senders, Byzantine receivers reporting UNREADABLE, and an active
server forging the relayed ciphertexts; (2) correctness, no pattern of shares on the share channel gives a wrong sum
instead of an abort; (3) parsing, malformed unmasking replies are typed rejections; (4) the guarantee sentences.
Breaks found are strict xfails naming the break."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import Aborted, BelowThreshold, MalformedMessage, SecAgg, SecAggPlus, secure_sum
from protocols.core.messages import Kind
from protocols.core.schedule import DropoutSchedule, Stage
from protocols.core.wire import SERVER, Frame, Reader, Writer, decode_frame, encode_frame
from protocols.masking.messages import SHARE_BYTES, SHARE_CIPHERTEXT_BYTES, UNREADABLE, Secret, parse_unmask_reply
from protocols.testing import SHARE_CORRUPTIONS, check_sum, claim_unreadable, corrupt_shares, masking_protocols, share_ciphertexts


def _kind(frame: bytes) -> int:
    return frame[3] if len(frame) > 3 else -1


def _replace_payload(frame: bytes, payload: bytes) -> bytes:
    f = decode_frame(frame, party="attack", stage="attack")
    return encode_frame(Frame(f.kind, f.session, f.sender, f.recipient, payload))


def _omit(sender: int, recipient: int):
    """A Byzantine sender's SHARES frame without the ciphertext for `recipient` (a well-formed, shorter frame)."""
    def tamper(src, dst, frame):
        if src == sender and dst == SERVER and _kind(frame) == Kind.SHARES:
            commitment, entries = share_ciphertexts(frame)
            entries.pop(recipient, None)
            return [_replace_payload(frame, commitment + Writer().entries(entries).getvalue())]
        return [frame]
    return tamper


def _protocol(name: str, active: bool, n: int):
    return SecAgg(active=active) if name == "secagg" else SecAggPlus(n=n, k=4, t=3, active=active)


# ------------------------------------------------------------------ (2) correctness: an omitted ciphertext

@pytest.mark.parametrize("active", [False, True])
@pytest.mark.parametrize("name", ["secagg", "secagg+"])
def test_a_sender_that_omits_one_ciphertext_then_drops_cannot_make_the_honest_sum_wrong(name, active):
    n = 8
    inputs = np.arange(n * 3, dtype=np.uint32).reshape(n, 3)
    protocol = _protocol(name, active, n)
    recipient = 4 if name == "secagg" else None
    graph = {}

    def record(src, dst, frame):
        if dst == SERVER and _kind(frame) == Kind.SHARES:
            graph[src] = set(share_ciphertexts(frame)[1])
        return [frame]

    secure_sum(inputs, protocol=protocol, seed=1, tamper=record)  # the graph (the same seed draws the same one)
    recipient = recipient if recipient in graph[2] else min(graph[2])
    try:
        out = secure_sum(inputs, protocol=protocol, seed=1, dropouts=DropoutSchedule({2: Stage.MASKED_INPUT}),
                         tamper=_omit(2, recipient))
    except (BelowThreshold, Aborted):
        return  # an abort is a correct answer
    assert recipient in out.included and 2 not in out.included
    check_sum(inputs, out, protocol.bits)


@pytest.mark.parametrize("active", [False, True])
def test_a_sender_that_omits_one_ciphertext_gets_no_honest_recipient_named(active):
    n = 6
    inputs = np.arange(n * 3, dtype=np.uint32).reshape(n, 3)
    try:
        out = secure_sum(inputs, protocol=SecAgg(active=active), seed=1, tamper=_omit(2, 4))
    except (BelowThreshold, Aborted):
        return
    assert "client 4" not in {e.party for e in out.rejected}, out.rejected


# ------------------------------------------------------------------ (1) privacy: one kind of share per owner

class Adversary:
    """Byzantine senders (corrupt ciphertexts), Byzantine receivers (claim unreadable), and in active mode a server
    that forges relayed ciphertexts (`forged`: recipient -> senders); records what every honest client revealed."""

    def __init__(self, n, senders, claims, forged):
        self.n, self.senders, self.claims, self.forged = n, senders, claims, forged
        self.revealed: dict[int, dict[int, set[int]]] = {}  # owner -> kind -> honest holders that revealed it

    def tamper(self, src, dst, frame):
        kind = _kind(frame)
        if src in self.senders and dst == SERVER and kind == Kind.SHARES:
            victims, mode, position = self.senders[src]
            if mode != "replay":
                frame = corrupt_shares(frame, victims, mode, position)[0]
        if src == SERVER and dst in self.forged and kind == Kind.RELAYED_SHARES:
            f = decode_frame(frame, party="attack", stage="attack")
            r = Reader(f.payload, party="attack", stage="attack")
            entries = r.entries(SHARE_CIPHERTEXT_BYTES, 2**20, 2**32 - 1)
            forged = {v: (bytes([c[0] ^ 1]) + c[1:] if v in self.forged[dst] else c) for v, c in entries.items()}
            frame = _replace_payload(frame, Writer().entries(forged).getvalue())
        if dst == SERVER and kind == Kind.UNMASK_SHARES:
            if src in self.claims:
                frame = claim_unreadable(frame, self.claims[src], self.n)[0]
            elif src not in self.senders:
                f = decode_frame(frame, party="attack", stage="attack")
                shares, _ = parse_unmask_reply(Reader(f.payload, party="attack", stage="attack"), self.n)
                for v, (secret, _) in shares.items():
                    self.revealed.setdefault(v, {}).setdefault(int(secret), set()).add(src)
        return [frame]


@st.composite
def adversaries(draw):
    n = draw(st.integers(4, 9))
    protocol = draw(masking_protocols(n, 32))
    others = lambda v: st.sets(st.sampled_from([u for u in range(n) if u != v]), min_size=1, max_size=n - 1)
    byz = draw(st.lists(st.integers(0, n - 1), min_size=0, max_size=min(3, n - 2), unique=True))
    senders = {v: (draw(others(v)), draw(st.sampled_from([m for m in SHARE_CORRUPTIONS if m != "replay"])), draw(st.integers(0, 2**16)))
               for v in byz if draw(st.booleans())}
    claims = {u: draw(others(u)) for u in byz if u not in senders}
    forged = {u: draw(others(u)) for u in draw(st.sets(st.integers(0, n - 1), max_size=n))} if protocol.active else {}
    drops = draw(st.dictionaries(st.integers(0, n - 1), st.sampled_from([Stage.MASKED_INPUT, Stage.UNMASKING]), max_size=2))
    return n, protocol, Adversary(n, senders, claims, forged), DropoutSchedule(drops), draw(st.integers(0, 2**20))


@settings(max_examples=40, deadline=None)
@given(case=adversaries())
def test_no_owner_gets_both_kinds_of_share_from_honest_holders_whatever_is_reported_unreadable(case):
    """Each honest holder reveals one kind a peer, and all honest holders the same kind for a peer, whatever the
    Byzantine senders corrupt, the Byzantine receivers call unreadable, the active server forges in relay, and who
    drops: the server never gets shares of both b_u and s_sk_u from honest clients. The round gives the exact sum of
    its included inputs or a typed abort."""
    n, protocol, adversary, drops, seed = case
    inputs = np.random.default_rng(seed).integers(0, 2**32, size=(n, 2), dtype=np.uint64).astype(np.uint32)
    try:
        out = secure_sum(inputs, protocol=protocol, seed=seed, dropouts=drops, tamper=adversary.tamper)
    except (BelowThreshold, Aborted):
        out = None
    for owner, kinds in adversary.revealed.items():
        assert len(kinds) == 1, f"client {owner}: honest holders revealed both kinds {kinds}"
    if out is not None:
        check_sum(inputs, out, protocol.bits)


# ------------------------------------------------------------------ (3) parsing: malformed unmasking replies

@st.composite
def replies(draw, n):
    """An unmasking payload the adversary writes: entries with chosen ids (some out of range), kinds 0..3 and
    zero or chosen bytes, optionally cut short or extended."""
    entries = draw(st.dictionaries(st.integers(0, n + 1), st.tuples(st.integers(0, 3), st.booleans(), st.binary(min_size=SHARE_BYTES, max_size=SHARE_BYTES)), max_size=n + 2))
    items = {v: bytes([k]) + (bytes(SHARE_BYTES) if zero else raw) for v, (k, zero, raw) in entries.items()}
    payload = Writer().entries(items).getvalue()
    cut = draw(st.one_of(st.none(), st.integers(0, max(len(payload) - 1, 0))))
    payload = payload[:cut] if cut is not None else payload + draw(st.binary(max_size=3))
    return payload


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_a_malformed_unmasking_reply_is_a_typed_rejection_and_the_round_goes_on(data):
    n = 6
    protocol = data.draw(st.sampled_from([SecAgg(), SecAgg(active=True), SecAggPlus(n=n, k=4, t=3)]))
    payload = data.draw(replies(n))
    inputs = np.arange(n * 2, dtype=np.uint32).reshape(n, 2)

    def tamper(src, dst, frame):
        if src == 1 and dst == SERVER and _kind(frame) == Kind.UNMASK_SHARES:
            return [_replace_payload(frame, payload)]
        return [frame]

    try:
        out = secure_sum(inputs, protocol=protocol, seed=2, tamper=tamper)
    except (BelowThreshold, Aborted):
        return
    check_sum(inputs, out, protocol.bits)
    try:
        shares, unreadable = parse_unmask_reply(Reader(payload, party="t", stage="t"), n)
    except MalformedMessage:
        shares = None
    if shares is None:  # the payload does not parse: the server must have rejected the frame, typed
        assert any(isinstance(e, MalformedMessage) and e.party == "server" for e in out.rejected), out.rejected


@pytest.mark.parametrize("raw", [bytes([UNREADABLE]) + b"\x00" * (SHARE_BYTES - 1) + b"\x01", bytes([3]) + bytes(SHARE_BYTES)])
def test_an_unreadable_report_with_bytes_or_an_unknown_kind_does_not_parse(raw):
    with pytest.raises(MalformedMessage, match="unknown secret kind"):
        parse_unmask_reply(Reader(Writer().entries({1: raw}).getvalue(), party="t", stage="t"), 4)


def test_duplicate_entries_for_one_peer_do_not_parse():
    """A share and an UNREADABLE report for the same peer: two entries with one id (the ids must ascend)."""
    payload = Writer().u32(2).u32(1).raw(bytes([Secret.SELF_MASK_SEED]) + bytes(SHARE_BYTES)).u32(1).raw(bytes([UNREADABLE]) + bytes(SHARE_BYTES)).getvalue()
    with pytest.raises(MalformedMessage, match="ascending"):
        parse_unmask_reply(Reader(payload, party="t", stage="t"), 4)


def test_an_unreadable_report_about_the_reporter_itself_rejects_its_frame():
    """Client 1 reports its own share unreadable: not its neighbour, so the server rejects the frame (a dropout at
    unmasking, typed) and the round goes on with the exact sum."""
    n = 6
    inputs = np.arange(n * 2, dtype=np.uint32).reshape(n, 2)

    def tamper(src, dst, frame):
        if src == 1 and dst == SERVER and _kind(frame) == Kind.UNMASK_SHARES:
            f = decode_frame(frame, party="t", stage="t")
            shares, _ = parse_unmask_reply(Reader(f.payload, party="t", stage="t"), n)
            items = {v: bytes([k]) + s.astype(">u8").tobytes() for v, (k, s) in shares.items()}
            items[1] = bytes([UNREADABLE]) + bytes(SHARE_BYTES)
            return [_replace_payload(frame, Writer().entries(items).getvalue())]
        return [frame]

    out = secure_sum(inputs, protocol=SecAgg(), seed=3, tamper=tamper)
    check_sum(inputs, out, 32)
    assert any(isinstance(e, MalformedMessage) and "reported unreadable" in str(e) for e in out.rejected), out.rejected
