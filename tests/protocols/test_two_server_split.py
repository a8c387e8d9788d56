"""The two-server round split: clients seal S1's share to S1, S0 relays what it cannot read, S1 and the dealer
run away from S0 (here: S1 replayed over the relayed frames, as on its own Flower node).

Guarantees attacked here: (1) the split round gives the in-process round exactly; (2) S0 never sees S1's share
in the clear; (3) a sealed share S0 alters, replays or swaps excludes its sender (named), a dealer part it
alters aborts the round: never a wrong aggregate; (4) S1 refuses public parameters that are not its own."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols.core.errors import Aborted, MalformedMessage, ProtocolError
from protocols.core.messages import Kind
from protocols.core.pki import KeyDirectory
from protocols.core.schedule import DropoutSchedule, Stage
from protocols.core.secure_sum import secure_sum
from protocols.core.wire import DEALER, HEADER_BYTES, SECOND_SERVER, SERVER, Frame, decode_frame, encode_frame
from protocols.two_server import TwoServerRobust
from protocols.two_server.remote import RemoteServers, second_server_step
from protocols.two_server.sealing import SEALED_OVERHEAD, associated_data, unseal
from secagg.agreement import X25519Agreement
from secagg.randomness import SeededRandomness, SystemRandomness
from tests.protocols.split_round import replacing
from tests.protocols.split_round import split_round as split


def split_round(protocol, x, seed, *, dropouts=None, tamper=None, wire=None, relay=None):
    """One round with S1 and the dealer behind the link a remote engine gives S0 (tests/protocols/split_round.py);
    `relay(frames) -> frames` rewrites what S0 relays to S1 (a compromised S0). Returns (output, S1's round key)."""
    key = X25519Agreement.generate(SystemRandomness())
    hook = None if relay is None else replacing(_ask=lambda ask: lambda frames: ask(relay(frames)))
    return split(protocol, x, seed, key=key, dropouts=dropouts, tamper=tamper, wire=wire, link_hook=hook), key


def parties(out):
    return sorted(e.party for e in out.rejected)


CONFIGS = [{"rule": "multi_krum", "f": 1}, {"rule": "krum", "f": 1, "norm_bound": 300.0}, {"rule": "centered_clipping", "f": 1, "tau": 40.0, "iterations": 2},
           {"rule": "multi_krum", "f": 1, "pre": "nnm"}, {"rule": "coordinate_median", "f": 1}, {"rule": "multi_krum", "f": 1, "validate": False}]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=st.sampled_from(CONFIGS), n=st.integers(4, 7), d=st.integers(1, 9), seed=st.integers(0, 2**16), drop=st.integers(-1, 6))
def test_the_split_round_gives_the_in_process_round_exactly(config, n, d, seed, drop):
    bits = 10
    x = np.random.default_rng(seed).integers(-30, 30, (n, d)).astype(np.int64).view(np.uint64).astype(np.uint16) & np.uint16(2**bits - 1)
    dropouts = DropoutSchedule({drop: Stage.MASKED_INPUT}) if 0 <= drop < n else DropoutSchedule()
    here = secure_sum(x, protocol=TwoServerRobust(bits=bits, **config), seed=seed, dropouts=dropouts)
    there, _ = split_round(TwoServerRobust(bits=bits, **config), x, seed, dropouts=dropouts)
    assert np.array_equal(there.result, here.result)
    assert there.included == here.included and there.weights == here.weights
    assert there.reports[0].guarantee.parameters == here.reports[0].guarantee.parameters
    assert there.reports[0].cost.party_seconds["second server"] > 0


def _inputs(n=6, d=5, seed=0):
    return np.random.default_rng(seed).integers(0, 40, (n, d)).astype(np.uint16)


def _relayed(frames):
    """{client: index} of the relayed sealed shares among S0's frames to S1."""
    return {int.from_bytes(f[HEADER_BYTES:HEADER_BYTES + 4], "big"): k for k, f in enumerate(frames)
            if f[3] == Kind.SHARE_VECTOR and decode_frame(f, party="test", stage="test").sender == SERVER}


def _rewrite(frame, payload):
    f = decode_frame(frame, party="test", stage="test")
    return encode_frame(Frame(f.kind, f.session, f.sender, f.recipient, payload))


def _without(x, gone, seed):
    """The in-process round in which the clients `gone` never sent anything (the expected honest outcome)."""
    return secure_sum(x, protocol=TwoServerRobust(rule="multi_krum", f=1, bits=16), seed=seed,
                      dropouts=DropoutSchedule({u: Stage.MASKED_INPUT for u in gone}))


@pytest.mark.parametrize("attack", ["flip", "swap", "replay-other", "truncate"])
def test_a_sealed_share_the_relay_alters_excludes_its_sender_never_a_wrong_aggregate(attack):
    x, seed = _inputs(), 3

    def relay(frames):
        at = _relayed(frames)
        if not at:
            return frames
        frames = list(frames)
        one, two = frames[at[1]], frames[at[2]]
        body = lambda f: f[HEADER_BYTES + 4:]
        label = lambda f: f[HEADER_BYTES:HEADER_BYTES + 4]
        if attack == "flip":
            frames[at[1]] = _rewrite(one, label(one) + body(one)[:-1] + bytes([body(one)[-1] ^ 1]))
        elif attack == "swap":
            frames[at[1]], frames[at[2]] = _rewrite(one, label(one) + body(two)), _rewrite(two, label(two) + body(one))
        elif attack == "replay-other":
            frames[at[2]] = _rewrite(two, label(two) + body(one))  # client 1's ciphertext relayed as client 2's
        else:
            frames[at[1]] = _rewrite(one, label(one) + body(one)[:SEALED_OVERHEAD - 1])
        return frames

    out, _ = split_round(TwoServerRobust(rule="multi_krum", f=1, bits=16), x, seed, relay=relay)
    gone = {"flip": [1], "swap": [1, 2], "replay-other": [2], "truncate": [1]}[attack]
    assert set(gone).isdisjoint(out.included)
    assert all(isinstance(e, MalformedMessage) for e in out.rejected) and parties(out) == [f"client {u}" for u in gone]
    assert np.array_equal(out.result, _without(x, gone, seed).result)  # what the honest rest gives


def test_a_sealed_share_from_another_round_fails_at_s1():
    """S0 relays, in round B, client 1's sealed share of round A (another session and S1 key)."""
    x = _inputs()
    kept = {}

    def keep(frames):
        kept.setdefault("a", [f for f in frames if f[3] == Kind.SHARE_VECTOR])
        return frames

    split_round(TwoServerRobust(rule="multi_krum", f=1, bits=16), x, 1, relay=keep)
    old = {int.from_bytes(f[HEADER_BYTES:HEADER_BYTES + 4], "big"): f for f in kept["a"]}

    def replay(frames):
        at = _relayed(frames)
        frames = list(frames)
        if at:
            frames[at[1]] = _rewrite(frames[at[1]], old[1][HEADER_BYTES:])
        return frames

    out, _ = split_round(TwoServerRobust(rule="multi_krum", f=1, bits=16), x, 2, relay=replay)
    assert 1 not in out.included and parties(out) == ["client 1"]
    assert np.array_equal(out.result, _without(x, [1], 2).result)


def test_a_dealer_part_the_relay_alters_aborts_the_round():
    x = _inputs()

    def alter(frames):
        out = []
        for f in frames:
            if f[3] == Kind.MATRIX and decode_frame(f, party="test", stage="test").sender == DEALER:
                f = f[:-1] + bytes([f[-1] ^ 0x80])
            out.append(f)
        return out

    with pytest.raises(Aborted, match="second server stopped the round: MalformedMessage.*failed authentication"):
        split_round(TwoServerRobust(rule="multi_krum", f=1, bits=16), x, 0, relay=alter)


def test_s0_sees_s1_shares_only_sealed():
    """Everything S0 receives (the clients' bundles, the dealer's replies, S1's frames) never holds a 16-byte piece
    of any client's S1 frame; the relayed blobs open only with S1's key."""
    x, meant, seen = _inputs(n=5, d=40), {}, []

    def tamper(src, dst, frame):
        if dst == SECOND_SERVER and src < 100:
            meant[src] = decode_frame(frame, party="test", stage="test").payload  # the client's S1 payload in the clear
        return [frame]

    def wire(src, dst, sealed):
        if dst == SERVER:
            seen.append(sealed)
        return [sealed]

    relayed = []
    out, key = split_round(TwoServerRobust(rule="multi_krum", f=1, bits=16), x, 5, tamper=tamper, wire=wire,
                           relay=lambda frames: (relayed.extend(frames), frames)[1])
    assert len(out.included) == 4 and len(meant) == 5
    everything = b"".join(seen + relayed)
    for payload in meant.values():
        assert all(payload[k:k + 16] not in everything for k in range(0, len(payload) - 16, 8))
    stranger = X25519Agreement.generate(SystemRandomness())
    for f in relayed:
        frame = decode_frame(f, party="test", stage="test")
        if frame.kind == Kind.SHARE_VECTOR:
            u, sealed = int.from_bytes(frame.payload[:4], "big"), frame.payload[4 + 4 + 64:]  # position, blob(signature), sealed
            ad = associated_data(frame.session, u, Kind.SHARE_VECTOR)
            assert decode_frame(unseal(key, sealed, ad, party="t", stage="t"), party="t", stage="t").payload == meant[u]
            with pytest.raises(MalformedMessage):
                unseal(stranger, sealed, ad, party="t", stage="t")


def _seated(opened) -> dict:
    opened.seat(list(range(opened.public["n"])), KeyDirectory())
    return opened.public


def test_s1_refuses_public_parameters_that_are_not_its_own():
    key = X25519Agreement.generate(SystemRandomness())
    protocol = TwoServerRobust(rule="multi_krum", f=1, bits=16)
    protocol.use_second_server(key.public_bytes())
    public = _seated(protocol.open_round(5, 4, SeededRandomness(0)))
    assert second_server_step(protocol, public, key, []).error is None  # waits for S0's first frame
    for change in ({"bits": 12}, {"validate": False}, {"second_server": X25519Agreement.generate(SystemRandomness()).public_bytes().hex()}, {"n": "5"}):
        step = second_server_step(protocol, {**public, **change}, key, [])
        assert step.done and step.error is not None and ("Refused" in step.error or "Aborted" in step.error), change


def test_an_unexpected_frame_from_s0_stops_s1():
    """S0 relays, as its first frame, something that is not the ids matrix: S1 stops the round (typed error)."""
    key = X25519Agreement.generate(SystemRandomness())
    protocol = TwoServerRobust(rule="multi_krum", f=1, bits=16)
    protocol.use_second_server(key.public_bytes())
    public = _seated(protocol.open_round(5, 4, SeededRandomness(0)))
    bogus = encode_frame(Frame(Kind.SHARE_VECTOR, bytes.fromhex(public["session"]), SERVER, SECOND_SERVER, b"\x00" * 12))
    step = second_server_step(protocol, public, key, [bogus])
    assert step.done and step.error.startswith("MalformedMessage")
    with pytest.raises(ProtocolError):
        RemoteServers(lambda frames: ([], step.error), lambda *a: None).fetch(SECOND_SERVER)
