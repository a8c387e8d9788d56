"""Review 6, break 5: an encrypted share that fails to authenticate at its recipient must not get the honest
recipient excluded (SecAgg / SecAgg+, passive and active).

The pair's channel key is symmetric (only sender and recipient know it), so the server cannot tell which of the
two made the share unreadable; the protocol does not ask it to. The recipient holds no share of the sender,
keeps the pair's mask (it comes from the advertised keys, not from the share), and reports the share
UNREADABLE at unmasking in the slot the share would have taken. Attacked here by Byzantine senders (a bit
flipped, a cut, another pair's ciphertext, an earlier round's) and Byzantine receivers (claiming a share they
can read is unreadable, or a report with junk bytes): the included set is the one `expected_survivors`
predicts with those shares left out, the sum is exact, no honest survivor is named, and the round aborts only
where a secret is left without t readable shares (then the error names its owner)."""

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from protocols import Aborted, BelowThreshold, MalformedMessage, SecAgg, SecAggPlus, secure_sum
from protocols.core.messages import Kind
from protocols.core.schedule import DropoutSchedule, Stage
from protocols.core.wire import SERVER, Frame, Reader, decode_frame, encode_frame
from protocols.masking.messages import encode_unmask_shares, parse_unmask_shares
from protocols.testing import (
    SHARE_CORRUPTIONS,
    check_sum,
    claim_unreadable,
    corrupt_shares,
    expected_survivors,
    masking_protocols,
    share_ciphertexts,
)


def _frame_kind(frame: bytes) -> int:
    return frame[3] if len(frame) > 3 else -1


def _stale(protocol, inputs, seed) -> dict[int, dict[int, bytes]]:
    """Every sender's ciphertexts (recipient -> bytes) of a clean earlier round of the same protocol."""
    sent = {}

    def record(src, dst, frame):
        if dst == SERVER and _frame_kind(frame) == Kind.SHARES:
            sent[src] = share_ciphertexts(frame)[1]
        return [frame]

    secure_sum(inputs, protocol=protocol, seed=seed, tamper=record)
    return sent


class Byzantine:
    """Senders that corrupt their shares (`senders[v] = (victims, mode, position)`) and receivers that claim shares
    unreadable (`claims[u] = (accused, junk)`); records each sender's recipients (the graph) and what fired."""

    def __init__(self, n, senders, claims, stale=None):
        self.n, self.senders, self.claims, self.stale = n, senders, claims, stale or {}
        self.recipients: dict[int, set[int]] = {}
        self.hit: dict[int, set[int]] = {}
        self.claimed: dict[int, set[int]] = {}

    def tamper(self, src, dst, frame):
        if dst == SERVER and _frame_kind(frame) == Kind.SHARES:
            self.recipients[src] = set(share_ciphertexts(frame)[1])
            if src in self.senders:
                victims, mode, position = self.senders[src]
                frame, self.hit[src] = corrupt_shares(frame, victims, mode, position, self.stale.get(src))
        if dst == SERVER and _frame_kind(frame) == Kind.UNMASK_SHARES and src in self.claims:
            accused, junk = self.claims[src]
            frame, self.claimed[src] = claim_unreadable(frame, accused, self.n, junk)
        return [frame]

    def model(self, t, active):
        """(predicted included set or None, dropouts the attacks amount to, owner -> holders without a readable share)."""
        drops = {v: Stage.SHARE_KEYS for v, hit in self.hit.items() if hit and self.senders[v][1] == "truncate"}
        drops |= {u: Stage.UNMASKING for u, claimed in self.claimed.items() if claimed and self.claims[u][1]}
        unreadable: dict[int, set[int]] = {}
        for v, hit in self.hit.items():
            if v not in drops:
                unreadable.setdefault(v, set()).update(hit)
        failed = {v: set(at) for v, at in unreadable.items()}  # where v's share failed to authenticate: v's signature does not count there
        for u, claimed in self.claimed.items():
            for v in claimed:
                unreadable.setdefault(v, set()).add(u)
        neighbours = self.neighbours = [frozenset(self.recipients.get(v, ())) for v in range(self.n)]
        self.failed = failed
        return expected_survivors(neighbours, t, DropoutSchedule(drops), active, unreadable, uncounted=failed), drops, unreadable


def _run(case_inputs, protocol, byz, seed):
    try:
        return secure_sum(case_inputs, protocol=protocol, seed=seed, tamper=byz.tamper)
    except (BelowThreshold, Aborted) as exc:
        return exc


def _check(inputs, protocol, byz, seed):
    out = _run(inputs, protocol, byz, seed)
    n = inputs.shape[0]
    t = protocol.degree_and_threshold(n)[1]
    predicted, drops, unreadable = byz.model(t, protocol.active)
    if predicted is None:
        assert isinstance(out, (BelowThreshold, Aborted)), f"the model predicts an abort, the round gave {out.included}"
        return out, predicted, unreadable
    assert not isinstance(out, Exception), f"aborted ({out!r}) where the model predicts {predicted} (unreadable {unreadable}, drops {drops})"
    assert out.included == predicted, (out.included, predicted, unreadable, drops)
    check_sum(inputs, out, protocol.bits)
    honest = set(range(n)) - set(byz.senders) - set(byz.claims)
    # active mode: a client does not count the signature of a neighbour whose share it cannot read, so Byzantine senders
    # can leave it short of t signatures; it then stops at unmasking (its own BelowThreshold, its input in the sum), as
    # it would if they withheld their signatures: exactly the clients the count predicts (any of them: a Byzantine
    # sender receives honestly), nobody blamed
    short = {h for h in predicted if protocol.active and len(byz.neighbours[h] & set(predicted) - {v for v, at in byz.failed.items() if h in at}) < t}
    stopped = {e.party for e in out.rejected if isinstance(e, BelowThreshold) and e.stage == "unmasking" and "signatures" in str(e)}
    assert stopped == {f"client {h}" for h in short}, (out.rejected, short)
    named = {e.party for e in out.rejected} - stopped
    assert not named & {f"client {h}" for h in honest & set(predicted)}, out.rejected
    answered = set(predicted) - drops.keys() - short  # the survivors whose unmasking reply the server took
    reports = {v: sorted(hit & answered) for v, hit in unreadable.items() if hit & answered}
    notes = out.reports[0].guarantee.notes
    if reports:
        pairs = ", ".join(f"{v} -> {to}" for v, to in sorted(reports.items()))
        assert f"(sender -> recipients: {pairs})" in notes, notes
    else:
        assert "unreadable" not in notes, notes
    if any(self_claim[1] for u, self_claim in byz.claims.items() if byz.claimed.get(u)):
        assert any(isinstance(e, MalformedMessage) and "UNREADABLE" in str(e) for e in out.rejected), out.rejected
    return out, predicted, unreadable


def _event(checked) -> None:
    _, predicted, unreadable = checked
    event("aborts" if predicted is None else "completes, shares unreadable" if any(unreadable.values()) else "completes")


@st.composite
def cases(draw, claims: bool | None):
    """Byzantine senders (claims False), receivers (True), or some of each (None)."""
    n = draw(st.integers(4, 9))
    protocol = draw(masking_protocols(n, 32))
    inputs = np.random.default_rng(draw(st.integers(0, 2**16))).integers(0, 2**32, size=(n, 3), dtype=np.uint64).astype(np.uint32)
    byzantine = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=min(3, n - 1), unique=True))
    victims = lambda v: st.sets(st.sampled_from([u for u in range(n) if u != v]), min_size=1, max_size=3)
    senders = [] if claims else byzantine if claims is False else [v for v in byzantine if draw(st.booleans())]
    receivers = [u for u in byzantine if u not in senders] if claims is not False else []
    plan = {v: (draw(victims(v)), draw(st.sampled_from(SHARE_CORRUPTIONS)), draw(st.integers(0, 2**20))) for v in senders}
    lies = {u: (draw(victims(u)), draw(st.booleans())) for u in receivers}
    return inputs, protocol, plan, lies, draw(st.integers(0, 2**20))


@settings(max_examples=150, deadline=None)
@given(case=cases(claims=False))
def test_byzantine_senders_of_unreadable_shares_never_get_an_honest_recipient_excluded(case):
    """Byzantine senders flip a bit of, cut, swap (another pair's) or replay (an earlier round's) the ciphertexts
    they send chosen recipients: a cut frame is rejected (its sender a dropout before sharing); otherwise the
    recipients stay included, the sum is exact, and the round aborts only where a secret lacks t readable shares."""
    inputs, protocol, senders, claims, seed = case
    stale = _stale(protocol, inputs, seed + 1) if any(mode == "replay" for _, mode, _ in senders.values()) else None
    _event(_check(inputs, protocol, Byzantine(inputs.shape[0], senders, claims, stale), seed))


@settings(max_examples=80, deadline=None)
@given(case=cases(claims=True))
def test_byzantine_receivers_claiming_readable_shares_unreadable_get_no_honest_sender_excluded(case):
    """Byzantine receivers report shares they can read as UNREADABLE (withholding them), or send reports with junk
    bytes (their unmasking frame is rejected: a dropout at unmasking): the accused honest senders stay included."""
    inputs, protocol, senders, claims, seed = case
    _event(_check(inputs, protocol, Byzantine(inputs.shape[0], senders, claims), seed))


@settings(max_examples=60, deadline=None)
@given(case=cases(claims=None))
def test_byzantine_senders_and_receivers_together_get_no_honest_client_excluded(case):
    inputs, protocol, senders, claims, seed = case
    stale = _stale(protocol, inputs, seed + 1) if any(mode == "replay" for _, mode, _ in senders.values()) else None
    _event(_check(inputs, protocol, Byzantine(inputs.shape[0], senders, claims, stale), seed))


@pytest.mark.parametrize("active", [False, True])
@pytest.mark.parametrize("protocol", ["secagg", "secagg+"])
def test_the_break_one_flipped_bit_in_the_share_for_client_4(protocol, active):
    """Review 6's break, in process: client 1 flips one bit of its encrypted share for client 4 (n = 5). Before,
    client 4 aborted and the round went on without it; now all five are included and the sum is exact."""
    n = 5
    proto = SecAgg(active=active) if protocol == "secagg" else SecAggPlus.for_clients_or_complete(n, active=active)
    inputs = np.arange(n * 4, dtype=np.uint32).reshape(n, 4)
    byz = Byzantine(n, {1: ({4}, "flip", 7)}, {})
    out, _, _ = _check(inputs, proto, byz, seed=3)
    assert out.included == (0, 1, 2, 3, 4) and byz.hit == {1: {4}}
    assert "client 4" not in {e.party for e in out.rejected}


def test_the_unreadable_report_costs_no_byte_the_share_would_not_have():
    """The UNREADABLE report takes the slot of the share the recipient cannot reveal (id, kind, 40 bytes): the
    round's bytes are the clean round's, byte for byte, with the same seed; and the clean round is unchanged."""
    n, inputs = 6, np.ones((6, 5), dtype=np.uint32)
    clean = secure_sum(inputs, protocol=SecAgg(), seed=4)
    attacked = secure_sum(inputs, protocol=SecAgg(), seed=4, tamper=Byzantine(n, {2: ({0, 5}, "flip", 100)}, {}).tamper)
    costs = clean.reports[0].cost, attacked.reports[0].cost
    assert [(c.bytes_up_mean, c.bytes_up_max, c.bytes_down_mean, c.bytes_down_max) for c in costs].count(
        (costs[0].bytes_up_mean, costs[0].bytes_up_max, costs[0].bytes_down_mean, costs[0].bytes_down_max)) == 2
    assert attacked.included == clean.included and np.array_equal(attacked.result, clean.result)
    assert "unreadable" not in clean.reports[0].guarantee.notes


def test_a_sender_that_leaves_its_seed_without_t_readable_shares_aborts_the_round_naming_it():
    """The weaker half of the guarantee: a Byzantine survivor that corrupts more than k - t of its shares leaves its
    self-mask seed without t readable shares; its masked input is already in the sum, so the round aborts
    (BelowThreshold, naming it and the recipients that report it), releasing nothing, as for a dealer of shares
    that match no commitment (test_masking_review_recovery.py). Nobody honest is blamed."""
    n = 6  # SecAgg: k = 5, t = 3; client 2 corrupts 3 shares: 2 readable < t
    with pytest.raises(BelowThreshold, match=r"client 2's SELF_MASK_SEED < t=3 \(clients \[0, 1, 5\] report its share"):
        secure_sum(np.ones((n, 2), dtype=np.uint32), protocol=SecAgg(), seed=5, tamper=Byzantine(n, {2: ({0, 1, 5}, "flip", 9)}, {}).tamper)


@pytest.mark.parametrize("accused", ["a client that dropped before sharing", "a non-neighbour"])
def test_an_unreadable_report_about_a_client_that_sent_no_share_rejects_the_reporters_frame(accused):
    """A Byzantine receiver reports a share unreadable that no one sent it (the sender dropped before sharing, or is
    not its neighbour on the SecAgg+ graph): the server rejects its unmasking frame (a dropout at unmasking) and the
    round goes on with the sum of the included inputs."""
    n = 8
    protocol = SecAgg() if accused.startswith("a client") else SecAggPlus(n=n, k=4, t=3)
    drops = DropoutSchedule({7: Stage.SHARE_KEYS} if accused.startswith("a client") else {})
    inputs = np.arange(n * 2, dtype=np.uint32).reshape(n, 2)
    graph = {}

    def tamper(src, dst, frame):
        if dst == SERVER and _frame_kind(frame) == Kind.SHARES:
            graph[src] = set(share_ciphertexts(frame)[1])
        if src == 1 and dst == SERVER and _frame_kind(frame) == Kind.UNMASK_SHARES:
            f = decode_frame(frame, party="t", stage="t")
            shares = parse_unmask_shares(Reader(f.payload, party="t", stage="t"), n)
            v = 7 if accused.startswith("a client") else min(set(range(n)) - graph[1] - {1})
            return [encode_frame(Frame(f.kind, f.session, f.sender, f.recipient, encode_unmask_shares(shares, frozenset({v}))))]
        return [frame]

    out = secure_sum(inputs, protocol=protocol, dropouts=drops, seed=6, tamper=tamper)
    assert any(isinstance(e, MalformedMessage) and "reported unreadable, not a neighbour that shared" in str(e) for e in out.rejected)
    assert 1 in out.included and "unreadable by their recipients" not in out.reports[0].guarantee.notes
    check_sum(inputs, out, 32)


@pytest.mark.parametrize("cut", [1, 8, 40, -1], ids=["1 byte short", "one share short", "a whole share short", "1 byte long"])
@pytest.mark.parametrize("protocol", [SecAgg(), SecAgg(active=True)], ids=["passive", "active"])
def test_a_share_of_another_length_under_the_genuine_channel_key_is_unreadable_not_held(monkeypatch, protocol, cut):
    """Byzantine sender 1 knows the pair's channel key, so it can authenticate a plaintext of any length for honest
    client 4. Held as a share of another length, it would make 4's unmasking reply malformed and get the honest
    recipient rejected; but its ciphertext is then not SHARE_CIPHERTEXT_BYTES long, so the server refuses sender 1's
    SHARES frame (a dropout before sharing) and 4 never sees it: the honest clients are included, the sum is theirs."""
    from protocols.masking.setup import RoundSetup
    from secagg.aead import AuthenticatedCipher

    genuine = AuthenticatedCipher.encrypt
    target = RoundSetup.share_associated_data

    def encrypt(self, plaintext, associated_data, *, rng):
        if associated_data.endswith(b"|1>4"):
            plaintext = plaintext[:-cut] if cut > 0 else plaintext + b"\x00"
        return genuine(self, plaintext, associated_data, rng=rng)

    def share_ad(self, sender, recipient):
        return target(self, sender, recipient) + f"|{sender}>{recipient}".encode()

    monkeypatch.setattr(RoundSetup, "share_associated_data", share_ad)
    monkeypatch.setattr(AuthenticatedCipher, "encrypt", encrypt)
    inputs = np.random.default_rng(3).integers(0, 2**32, (5, 3), dtype=np.uint64).astype(np.uint32)
    out = secure_sum(inputs, protocol=protocol, seed=1)
    assert out.included == (0, 2, 3, 4)
    assert [(type(e), e.stage) for e in out.rejected] == [(MalformedMessage, "SHARE_KEYS")]
    assert np.array_equal(out.result, inputs[[0, 2, 3, 4]].sum(axis=0, dtype=np.uint32))
